"""Tutorial step 2: a complete small connector.

``EchoConnector`` echoes every frame the application writes on an OUTBOUND channel back on
the INBOUND channel with the same routing address (``routing = { kind = "echo", address =
"ping" }`` on both), after ``delay_s``. Its "protocol" is a queue and one thread of its own, so
it needs no network, yet it does everything a real connector does:

- ``open(ctx)`` starts the protocol side and reports the link's health (``ctx.report``);
- ``send(descriptor, frame)`` takes one outbound frame (on the gateway's outbound thread);
- the connector's own thread pushes inbound frames with ``ctx.deliver``;
- ``EchoSettings`` is the attrs class a system file's ``settings`` table is structured into,
  validated before anything starts; ``check_channel`` checks each channel at load time;
- ``configure`` applies a new ``delay_s`` live (``taktora param set``);
- ``stats`` adds counters to the gateway's (``taktora control ... stats``).

A system file names it as ``connector = "echo_connector:EchoConnector"``: this file's folder
must be importable (``PYTHONPATH=examples/tutorial``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.connectors import (
    ChannelDescriptor,
    Connector,
    ConnectorContext,
    ConnectorError,
    Frame,
    HealthState,
)


@attrs.frozen(kw_only=True)
class EchoSettings:
    """The ``settings`` table of an echo gateway."""

    delay_s: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0),
                                                         attrs.validators.le(1.0)])
    """How long each frame takes to come back, 0 .. 1 s; frames come back one after the other,
    so at most ``1 / delay_s`` per second: the others wait in the queue."""
    max_pending: int = attrs.field(default=64, validator=[attrs.validators.ge(1),
                                                          attrs.validators.le(4096)])
    """Frames on their way back at most; beyond that ``send`` refuses (counted) and the link
    is reported Degraded until the queue has room again."""


class EchoConnector(Connector):
    """Outbound frames come back on the inbound channel with the same routing address."""

    settings_class = EchoSettings

    @classmethod
    def from_settings(cls, name: str, settings: Any) -> EchoConnector:
        """The connector of gateway ``name`` (``settings``: an :class:`EchoSettings`); no I/O."""
        return cls(name, settings)

    @classmethod
    def check_channel(cls, settings: Any, descriptor: ChannelDescriptor) -> None:
        """Routing ``{ kind = "echo", address = "NAME" }``; pure, no I/O (runs at load time)."""
        routing = descriptor.routing
        if routing.kind != "echo" or not routing.address:
            raise ConnectorError(f"channel {descriptor.name!r}: routing {routing.kind!r} "
                                 f"{routing.address!r} is not an echo routing; write routing = "
                                 '{ kind = "echo", address = "NAME" } (the same NAME on the '
                                 "outbound channel and on the inbound one it comes back on)")

    def __init__(self, name: str = "echo", settings: EchoSettings | None = None) -> None:
        self.name = name
        self.settings = settings or EchoSettings()
        self._ctx: ConnectorContext | None = None
        self._back: dict[str, str] = {}  # outbound channel -> inbound channel it comes back on
        self._pending: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = {"echoed": 0, "refused": 0}
        self._degraded = False

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self, ctx: ConnectorContext) -> None:
        """Pair each outbound channel with the inbound one of the same address, start the echo
        thread, report Up. ConnectorError when an outbound channel has no inbound partner."""
        inbound = {d.routing.address: d.name for d in ctx.inbound}
        lonely = [d.name for d in ctx.outbound if d.routing.address not in inbound]
        if lonely:
            raise ConnectorError(f"connector {self.name!r}: outbound channel(s) {lonely} have "
                                 "no inbound channel with the same routing address")
        self._back = {d.name: inbound[d.routing.address] for d in ctx.outbound}
        self._ctx = ctx
        self._pending = queue.Queue(maxsize=self.settings.max_pending)
        self._degraded = False
        self._thread = threading.Thread(target=self._echo, args=(ctx, self._pending),
                                        name=f"echo-{self.name}", daemon=True)
        self._thread.start()
        ctx.report(HealthState.UP, f"echoing {len(ctx.outbound)} channel(s)")

    def close(self) -> None:
        """Stop the echo thread (what is still queued is dropped); idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while True:  # None tells the echo thread to end; make room for it if the queue is full
            try:
                self._pending.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):  # the echo thread may have taken it
                    self._pending.get_nowait()
        thread.join()
        self._ctx = None

    # -- data -----------------------------------------------------------------------------------
    def send(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """Queue ``frame`` to come back on the inbound partner of ``descriptor`` (the gateway's
        outbound thread)."""
        back = self._back.get(descriptor.name)
        if self._ctx is None or back is None:
            raise ConnectorError(f"connector {self.name!r}: {descriptor.name!r} is not an open "
                                 "outbound channel")
        try:
            # a copy: ``frame`` may be a view of shared memory, valid only during this call
            self._pending.put_nowait((back, bytes(frame)))
        except queue.Full:
            self._count("refused")
            if not self._degraded:
                self._degraded = True
                self._ctx.report(HealthState.DEGRADED, "echo queue full")
            raise ConnectorError(f"connector {self.name!r}: {self.settings.max_pending} frames "
                                 "pending, frame refused") from None

    def _echo(self, ctx: ConnectorContext, pending: queue.Queue[tuple[str, bytes] | None]) -> None:
        """The connector's own thread: deliver what ``send`` queued, ``delay_s`` later."""
        while (entry := pending.get()) is not None:  # None: close() ends the thread
            channel, frame = entry
            if self.settings.delay_s:
                time.sleep(self.settings.delay_s)
            if ctx.deliver(channel, frame):  # published into iceoryx2 on this thread
                self._count("echoed")
            if self._degraded and pending.qsize() < self.settings.max_pending // 2:
                self._degraded = False
                ctx.report(HealthState.UP, "echo queue has room again")

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    # -- optional hooks -------------------------------------------------------------------------
    def configure(self, settings: Any) -> bool:
        """A new ``delay_s`` applies live; a new ``max_pending`` needs a reconnect (False)."""
        if not isinstance(settings, EchoSettings):
            return False
        if settings.max_pending != self.settings.max_pending:
            return False
        self.settings = settings  # one attribute swap: the echo thread sees old or new
        return True

    def stats(self) -> Mapping[str, int]:
        """``echoed`` (delivered back) and ``refused`` (queue full)."""
        with self._lock:
            return dict(self._counts)
