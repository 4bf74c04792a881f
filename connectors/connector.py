"""The connector surface: what a protocol back-end implements (python-can's BusABC, smaller).

Two methods are required::

    open(ctx)                    bind sockets / open the session for ctx.channels; from then on
                                 push inbound frames with ctx.deliver(channel, frame) and the
                                 link's health with ctx.report(state, reason)
    send(descriptor, frame)      put one frame on the protocol for an OUTBOUND channel

Everything else has a default: ``close()`` (nothing), ``poll(timeout)`` (only pull protocols
implement it; then the framework runs a reader thread that delivers what it returns),
``health()`` (the last state reported), ``stats()``, ``on_pause``, ``configure`` (run-time
settings; default: reconnect), ``handle_request``, and for system files ``settings_class`` /
``from_settings`` / ``check_channel``. The framework
(:class:`~taktora.connectors.gateway.dispatcher.Dispatcher`) does the rest: iceoryx2 ports,
the outbound thread, envelope checks, pause/resume, counters. Health is the connector's *link*
state only; whether the gateway is paused is a separate mode (python-can issue #736 mixed the
two in one enum).

What a frame is depends on :attr:`Connector.carries_envelope`:

- ``True`` (default, e.g. UDP): the whole envelope (48-byte header + payload) travels on the
  protocol, so the far side checks sequence and CRC. ``send`` gets it, ``deliver`` takes it.
- ``False`` (protocols with their own framing, e.g. CAN): ``send`` gets the payload only,
  ``deliver`` takes the payload only and the framework wraps it in a fresh envelope
  (per-channel sequence from 1, the descriptor's codec id).

A connector that needs both (MQTT: plain payloads on data routes, but the envelope's kind and
correlation id on request/response routes) overrides :meth:`Connector.envelope_on`, asked once
per channel at each connect.

Either way nothing is re-encoded: codecs run on the application side only.

Threading: ``send`` is called only from the dispatcher's outbound thread; ``poll`` only from
its reader thread; ``open``/``close`` by the owner while no ``send`` runs; ``deliver`` and
``report`` from whatever thread the protocol uses; ``health`` and ``stats`` from any thread.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from taktora.actors.control.messages import Reply
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthState
from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.model import ChannelDescriptor, Routing
from taktora.connectors.requests import ConnectorRequest

Inbound = tuple[str | Routing, Frame]
"""What :meth:`Connector.poll` returns: the channel (by descriptor name or by routing) and the
frame."""


class Connector(abc.ABC):
    """Base class of protocol back-ends: implement :meth:`open` and :meth:`send`.

    Errors: ``send`` raises :class:`~taktora.connectors.errors.LinkDownError` when the link is
    down and :class:`~taktora.connectors.errors.ConnectorError` for other failures (the
    dispatcher counts both by cause and keeps going); ``poll`` raises ConnectorError for a
    failure (counted, retried after a short pause); ``open`` raises ConnectorError when the
    channels cannot be served (the owner decides whether to retry).
    """

    name: str = "connector"
    carries_envelope: bool = True

    #: True: the connector takes its outbound frames itself, from its own loop, with
    #: :meth:`ConnectorContext.drain <taktora.connectors.context.ConnectorContext.drain>`
    #: (the EtherCAT cycle reads its outputs once per cycle); the framework's outbound thread
    #: then does not wake per frame and ``send`` is never called. While no connection is up
    #: the outbound thread drains (and counts ``down``) as for any connector.
    takes_outbound: bool = False

    #: The attrs class a gateway's ``settings`` table is structured into (cattrs, strict, with
    #: key paths in errors). None: the table holds the constructor's keyword arguments as
    #: they are (``Class(**settings)``), for connectors written before settings classes.
    settings_class: ClassVar[type | None] = None

    _context: ConnectorContext | None = None

    @abc.abstractmethod
    def open(self, ctx: ConnectorContext) -> None:
        """Open the protocol side for ``ctx.channels`` (caller's thread; may block on I/O).

        Keep ``ctx``: deliver inbound frames to it and report the link's health to it (at the
        latest when ``open`` returns: Up, Degraded, or Connecting while a handshake goes on).
        """

    @abc.abstractmethod
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Send ``frame`` for the OUTBOUND channel ``descriptor`` (outbound thread).

        ``frame`` may be a read-only view of shared memory, valid only during this call: copy
        it if you keep it.
        """

    def close(self) -> None:
        """Release sockets and sessions; idempotent (owner's thread). Default: nothing."""
        return None

    def poll(self, timeout: float) -> Inbound | None:
        """Pull protocols only: the next inbound frame, waiting at most ``timeout`` seconds
        (the framework's reader thread; must return within about ``timeout``; None when
        nothing arrived). A connector that pushes through ``ctx.deliver`` leaves it alone."""
        raise NotImplementedError(f"{type(self).__name__} pushes its frames; it has no poll()")

    def envelope_on(self, descriptor: ChannelDescriptor) -> bool:
        """Whether frames of ``descriptor`` travel as whole envelopes (True) or payloads only
        (False). Asked by the framework once per channel when the connector is connected
        (owner's thread). Default: :attr:`carries_envelope` for every channel."""
        return self.carries_envelope

    @classmethod
    def pulls(cls) -> bool:
        """True when this connector implements :meth:`poll` (the framework then runs a reader
        thread for it)."""
        return cls.poll is not Connector.poll

    def health(self) -> HealthState:
        """The link's health as last reported to the context (any thread); Connecting before
        the first report."""
        ctx = self._context
        return ctx.state if ctx is not None else HealthState.CONNECTING

    def bind(self, ctx: ConnectorContext) -> None:
        """Remember ``ctx`` (the framework calls this right before :meth:`open`)."""
        self._context = ctx

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

    # -- optional hooks with defaults ----------------------------------------------------------
    def on_pause(self, paused: bool) -> None:
        """The app paused (True) or resumed (False) this connector.

        Called by the gateway on its actor thread, after the dispatcher stopped (or before it
        restarts) forwarding. A connector that drives outputs puts them to their safe value
        here (EtherCAT). Must not block. If it raises, the gateway replies with an error and
        stays paused. Default: nothing.
        """
        return None

    def configure(self, settings: Any) -> bool:
        """Take new ``settings`` (an instance of :attr:`settings_class`, or the raw keyword
        mapping when that is None) while connected, without reopening; True if applied.

        Called by the gateway on its actor thread for a run-time
        :class:`~taktora.actors.control.messages.Configure`, after the update was merged,
        structured and checked against every channel (:meth:`check_channel`), and only when it
        changes something. The dispatcher may be running (``send`` / ``poll`` on their
        threads): what they read must change atomically. Must not block for long.

        Return False when the change needs a new connection: the gateway then builds a new
        connector from the new settings and reconnects (the default, for every setting).
        Raise :class:`~taktora.connectors.errors.ConnectorError` to refuse the change, having
        applied nothing: the gateway answers ``ErrorReply(REJECTED)`` with the message and
        keeps the old settings.
        """
        return False

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
