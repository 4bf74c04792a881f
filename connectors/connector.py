"""The connector protocol: what a protocol back-end implements (python-can's BusABC, smaller).

A back-end subclasses :class:`Connector` and implements five methods::

    open(descriptors)            bind sockets / open the session for these channels
    close()                      release everything; idempotent
    send(descriptor, frame)      put one frame on the protocol for an OUTBOUND channel
    receive(timeout)             one inbound frame as (channel name or Routing, bytes), or None
    health()                     HealthState now (Connecting / Up / Degraded / Down)

The framework (:class:`~taktora.connectors.gateway.dispatcher.Dispatcher`) does the rest: iceoryx2 ports,
threads, envelope checks, pause/resume, counters. Health is the connector's *link* state only;
whether the gateway is paused is a separate mode of the dispatcher (python-can issue #736 mixed
the two in one enum).

What a frame is depends on :attr:`Connector.carries_envelope`:

- ``True`` (default, e.g. UDP): the whole envelope (48-byte header + payload) travels on the
  protocol, so the far side checks sequence and CRC. ``send`` gets it, ``receive`` returns it.
- ``False`` (protocols with their own framing, e.g. CAN): ``send`` gets the payload only,
  ``receive`` returns the payload only and the dispatcher wraps it in a fresh envelope
  (per-channel sequence from 1, the descriptor's codec id).

Either way nothing is re-encoded: codecs run on the application side only.

Threading: ``send`` is called only from the dispatcher's outbound thread and ``receive`` only
from its inbound thread, possibly at the same time; ``open``/``close`` are called by the owner
(the dispatcher's ``start``/``stop`` caller) while neither thread runs; ``health`` and
``stats`` may be called from any thread.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from taktora.actors.control.messages import Reply
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthState
from taktora.connectors.model import ChannelDescriptor, Routing
from taktora.connectors.requests import ConnectorRequest

Frame = bytes | bytearray | memoryview

Inbound = tuple[str | Routing, Frame]
"""What :meth:`Connector.receive` returns: the channel (by descriptor name or by routing) and
the frame."""


class Connector(abc.ABC):
    """Base class of protocol back-ends. Subclasses implement the abstract methods.

    Errors: ``send`` raises :class:`~taktora.connectors.errors.LinkDownError` when the link is
    down and :class:`~taktora.connectors.errors.ConnectorError` for other failures (the
    dispatcher counts both by cause and keeps going); ``receive`` raises ConnectorError for a
    failure (counted, retried after a short pause); ``open`` raises ConnectorError when the
    channels cannot be served (the owner decides whether to retry).
    """

    name: str = "connector"
    carries_envelope: bool = True

    #: The attrs class a gateway's ``settings`` table is structured into (cattrs, strict, with
    #: key paths in errors). None: the table holds the constructor's keyword arguments as
    #: they are (``Class(**settings)``), for connectors written before settings classes.
    settings_class: ClassVar[type | None] = None

    # -- construction from a system file (classmethods: no instance, no I/O) -----------------
    @classmethod
    def from_settings(cls, name: str, settings: Any) -> Connector:
        """Build the connector of gateway ``name`` from its settings: an instance of
        :attr:`settings_class`, or the raw keyword mapping when that is None.

        Runs on the gateway's actor thread in ``on_start``; must not do I/O (``open`` does).
        A connector with a settings class overrides this.
        """
        if cls.settings_class is not None:
            raise NotImplementedError(f"{cls.__name__} declares settings_class but does not "
                                      "override from_settings")
        return cls(**dict(settings))

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Validate one channel for this protocol before anything starts: its routing kind,
        address and options, and whether ``settings`` can serve it (e.g. CAN: the interface
        it names exists). Raise :class:`~taktora.connectors.errors.ConnectorError` naming
        what is wrong and what to do. Called by ``taktora.system.config`` at load, with the
        structured settings (the raw mapping when there is no settings class). Pure: no I/O.
        Default: nothing is checked before ``open``.
        """
        return None

    @abc.abstractmethod
    def open(self, descriptors: Sequence[ChannelDescriptor]) -> None:
        """Open the protocol side for ``descriptors`` (caller's thread; may block on I/O)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets and sessions; idempotent (caller's thread)."""

    @abc.abstractmethod
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Send ``frame`` for the OUTBOUND channel ``descriptor`` (outbound thread).

        ``frame`` may be a read-only view of shared memory, valid only during this call: copy
        it if you keep it.
        """

    @abc.abstractmethod
    def receive(self, timeout: float) -> Inbound | None:
        """The next inbound frame, waiting at most ``timeout`` seconds (inbound thread).

        Must return within about ``timeout`` so that the dispatcher can stop; returns None
        when nothing arrived.
        """

    @abc.abstractmethod
    def health(self) -> HealthState:
        """The link's health now (any thread)."""

    # -- optional hooks with defaults ----------------------------------------------------------
    def on_pause(self, paused: bool) -> None:
        """The app paused (True) or resumed (False) this connector.

        Called by the gateway on its actor thread, after the dispatcher stopped (or before it
        restarts) forwarding. A connector that drives outputs puts them to their safe value
        here (EtherCAT). Must not block. If it raises, the gateway replies with an error and
        stays paused. Default: nothing.
        """
        return None

    def handle_request(self, msg: ConnectorRequest) -> Reply:
        """Serve a protocol-specific control request (e.g. EtherCAT's ReadSdo) and return its
        typed reply, carrying ``msg.correlation_id``.

        Called by the gateway on its actor thread while the dispatcher may be running; blocks the
        actor for as long as it takes (keep it bounded: a connector applies its own timeout).
        Raise :class:`~taktora.actors.errors.ControlError` (or another ``TaktoraError``) to
        refuse or report a failure: the gateway answers ``ErrorReply(REJECTED)`` with the
        message and keeps running. Default: every request is refused as not supported.
        """
        raise ControlError(f"{type(msg).__name__} is not supported by this connector "
                           f"({type(self).__name__})")

    def stats(self) -> Mapping[str, int]:
        """Protocol-side counters (sent, received, drops by cause...); empty by default."""
        return {}

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
