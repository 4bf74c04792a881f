"""The iceoryx2 node: the owner of every port a process opens, under an isolation prefix."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import iceoryx2 as iox
from taktora.transport.errors import ServiceOpenError, TransportError
from taktora.transport.events import Listener, Notifier
from taktora.transport.isolation import prefix_from_env, validate_prefix
from taktora.transport.pubsub import Publisher, Resume, Subscriber
from taktora.transport.reqresp import Client, Server

if TYPE_CHECKING:
    from taktora.transport.channel import ChannelSpec, EventSpec, ServiceSpec

log = logging.getLogger(__name__)


class Port(Protocol):
    """Anything a node hands out and closes on :meth:`Node.close`."""

    def close(self) -> None: ...


P = TypeVar("P", bound=Port)


@attrs.frozen
class CleanupReport:
    """What :meth:`Node.cleanup_dead_nodes` did: nodes of dead processes removed or not."""

    cleaned: int
    failed: int


_created_here = 0  # pid of the first process that created a node (forked children inherit it)


def iceoryx2_used() -> bool:
    """True once this process (or one it was forked from) created an iceoryx2 node. A process
    forked from such a one inherits iceoryx2's process state: the nodes it creates are never
    reported dead after a ``kill -9`` (their ports are never reclaimed), so actor systems
    started from here spawn their processes instead of forking them
    (:mod:`taktora.system.start_method`)."""
    return _created_here != 0


class Node:
    """An iceoryx2 node under an isolation prefix; the factory and owner of ports.

    ``prefix`` isolates this node's services from every other prefix (defaults to the
    ``TAKTORA_IOX_PREFIX`` environment variable, else iceoryx2's default). At creation the node
    removes what dead processes of the same prefix left behind (``cleanup_dead=True``); the
    report is in :attr:`last_cleanup`.

    ``signal_handling`` is off by default: iceoryx2 then leaves SIGINT/SIGTERM to Python (the
    executor wires them to its WaitSet). A node and its ports may be used from several threads,
    but one port must not be used by two threads at the same time.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        prefix: str | None = None,
        signal_handling: bool = False,
        cleanup_dead: bool = True,
    ) -> None:
        self.prefix = validate_prefix(prefix if prefix is not None else prefix_from_env())
        cfg = iox.config.default()
        cfg.global_cfg.prefix = iox.FileName.new(self.prefix)
        mode = (
            iox.SignalHandlingMode.HandleTerminationRequests
            if signal_handling
            else iox.SignalHandlingMode.Disabled
        )
        builder = iox.NodeBuilder.new().config(cfg).signal_handling_mode(mode)
        if name:
            builder = builder.name(iox.NodeName.new(name))
        global _created_here
        _created_here = _created_here or os.getpid()
        try:
            self._node: Any = builder.create(iox.ServiceType.Ipc)
        except Exception as exc:
            raise TransportError(f"cannot create iceoryx2 node (prefix {self.prefix!r}): {exc}") from exc
        self._config = cfg
        self._ports: list[Port] = []
        self._lock = threading.Lock()
        self._closed = False
        self.last_cleanup: CleanupReport | None = self.cleanup_dead_nodes() if cleanup_dead else None

    # ---------------------------------------------------------------- lifecycle
    def cleanup_dead_nodes(self) -> CleanupReport:
        """Remove the resources of dead nodes of this prefix (e.g. after a kill -9).

        Dead publishers are not noticed by their subscribers until this runs somewhere.
        Does not block on other processes.
        """
        state = self._node.try_cleanup_dead_nodes()
        report = CleanupReport(cleaned=int(state.cleanups), failed=int(state.failed_cleanups))
        if report.cleaned or report.failed:
            log.info("iceoryx2 prefix %r: cleaned %d dead node(s), %d failed",
                     self.prefix, report.cleaned, report.failed)
        return report

    def close(self) -> None:
        """Close every port this node handed out (newest first), then the node. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ports, self._ports = self._ports, []
        for port in reversed(ports):
            try:
                port.close()
            except Exception:  # keep closing the rest; the failure is logged, not lost
                log.exception("closing %r failed", port)
        self._node = None

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def raw(self) -> Any:
        """The iceoryx2 node itself (for what this wrapper does not cover)."""
        self._check_open()
        return self._node

    # ---------------------------------------------------------------- factories
    def publisher(self, spec: ChannelSpec, *, resume: Resume | None = None) -> Publisher:
        """A publisher on ``spec`` (``resume``: continue a dead publisher's sequence)."""
        return self._track(Publisher(self, spec, resume=resume))

    def subscriber(self, spec: ChannelSpec) -> Subscriber:
        return self._track(Subscriber(self, spec))

    def notifier(self, spec: EventSpec) -> Notifier:
        return self._track(Notifier(self, spec))

    def listener(self, spec: EventSpec) -> Listener:
        return self._track(Listener(self, spec))

    def client(self, spec: ServiceSpec) -> Client:
        return self._track(Client(self, spec))

    def server(self, spec: ServiceSpec) -> Server:
        return self._track(Server(self, spec))

    # ---------------------------------------------------------------- internals
    def _track(self, port: P) -> P:
        with self._lock:
            self._check_open()
            self._ports.append(port)
        return port

    def _forget(self, port: Port) -> None:
        with self._lock:
            if port in self._ports:
                self._ports.remove(port)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("node is closed: create a new Node")

    def service_builder(self, name: str) -> Any:
        self._check_open()
        return self._node.service_builder(iox.ServiceName.new(name))

    def open_event(self, name: str, max_notifiers: int = 16, max_listeners: int = 16,
                   max_event_id: int = 255) -> Any:
        """Open or create the event service ``name`` (used to pair wake-ups with channels)."""
        try:
            return (
                self.service_builder(name)
                .event()
                .max_notifiers(max_notifiers)
                .max_listeners(max_listeners)
                .event_id_max_value(max_event_id)
                .open_or_create()
            )
        except Exception as exc:
            raise ServiceOpenError(
                f"event service {name!r}: {exc} (an existing service with other limits? "
                "all participants must use the same EventSpec)"
            ) from exc
