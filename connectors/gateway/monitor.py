"""``GatewayMonitor``: the health and the loss ledger of one gateway, outliving its restarts.

The first child of a gateway group (:mod:`taktora.connectors.gateway.group`). It keeps:

- **the health state machine** (ARCH_0012) of the gateway. The gateway actor tells its own link
  transitions as :class:`LinkHealth`; the monitor follows them (a restarted gateway's first
  event, Connecting, follows the Down of the crash: ``previous`` is Down, not None) and ignores
  late events of an incarnation that already ended. When the gateway actor dies without
  stopping (a crash, ``kill -9``), the monitor goes Down at once, reason ``exited: <why>``
  (see *the death watch* below). Every transition is one :class:`HealthEvent`, sent to every
  subscriber: those in ``args["subscribers"]`` and those added at run time with
  :class:`Subscribe` (a gateway restart keeps both: they live here). A new subscriber gets the
  current state at once.
- **the loss ledger's file**: the gateway counts in a shared-memory counter block
  (:mod:`taktora.transport.shared_counters`) that every incarnation opens again, so nothing it
  counted is lost with its process. The monitor removes a stale block (of an earlier run) when
  it starts and the block when it stops; while the gateway restarts it answers ``GetStats``
  from the block itself.

The death watch: once the gateway reported started, the group tells the monitor the
gateway's process (:class:`LinkProcess`: pid, start time, pid namespace) and the monitor opens
a pidfd on it (Linux >= 5.3), which Thespian's own loop watches for it (``ThespianWatch``: no
thread). The moment the process is gone, the monitor goes Down (``exited: killed``), without
waiting for Thespian to tell the group and the group to tell the monitor (Thespian's exit
notice and one hop: ~1 ms sooner here, 2 cores). The group's notice follows
(:class:`LinkProcessExited`, a :class:`LinkExited` naming the same process): it is counted in
``exits`` and makes no second Down. A death with notice (a crash, an orderly stop) is already
Down by the gateway's own last event ("crashed: ...", "stopped"): Thespian delivers it before
the process exits (its TCP transport drains every send, acknowledged, before an actor's
process ends), so it reaches the monitor before the pidfd fires and the watch adds nothing.
Without a watch (in-process base, another pid namespace or host, no pidfd, a process that was
already gone) the group's notice makes the Down, as before.

It answers :class:`GetHealth` (also while the gateway restarts: the gateway group routes it
here) and :class:`GetStats` (health, ``exits``, ``watch_downs`` (the Downs the death watch
made), the ledger's totals ``total.<key>`` and the number of incarnations; the group routes it
here only while the gateway actor is not running).

All handlers run on the monitor's actor thread and never block.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import select
from pathlib import Path
from typing import Any

import attrs
from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.health_monitor import HealthSubscribers
from taktora.actors.control.messages import (
    GetHealth,
    GetStats,
    HealthReply,
    StatsReply,
)
from taktora.actors.models.health import TRANSITIONS, HealthEvent, HealthMachine, HealthState
from taktora.connectors.errors import ConnectorError
from taktora.connectors.gateway.config import GatewayConfig
from taktora.connectors.gateway.counters import block_totals
from taktora.connectors.gateway.messages import LinkExited, LinkHealth
from taktora.connectors.model import Direction
from taktora.transport import isolation
from taktora.transport.errors import TransportError
from taktora.transport.shared_counters import SharedCounters, counters_path
from thespian.actors import ThespianWatch, WatchMessage

log = logging.getLogger(__name__)

D = HealthState.DOWN

#: incarnations remembered as ended (their late messages are ignored)
ENDED_MEMORY = 32


@functools.cache
def pid_namespace() -> str:
    """This process's pid namespace as ``"<boot id>:<namespace inode>"`` (two processes see the
    same pids only if they agree); ``""`` if /proc does not tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def process_identity(pid: int, *, parent: int | None = None) -> int | None:
    """Process ``pid``'s start time (clock ticks after boot, /proc/<pid>/stat field 22), which
    tells it from a later process given the same pid; None if there is no such process (or no
    /proc), or if ``parent`` is given and is not its parent's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": field 3 onwards
    try:
        ppid, ticks = int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None
    return None if parent is not None and ppid != parent else ticks


@attrs.frozen(kw_only=True)
class LinkProcess:
    """Group supervisor -> monitor: the gateway actor (which just reported started) runs as
    process ``pid``, started at ``start_ticks`` (:func:`process_identity`), in pid namespace
    ``namespace`` (:func:`pid_namespace`)."""

    pid: int = attrs.field(validator=attrs.validators.instance_of(int))
    start_ticks: int = attrs.field(validator=attrs.validators.instance_of(int))
    namespace: str = attrs.field(validator=attrs.validators.instance_of(str))


@attrs.frozen(kw_only=True)
class LinkProcessExited(LinkExited):
    """Group supervisor -> monitor: a :class:`LinkExited` naming the process that exited
    (``pid``, ``start_ticks`` of its :class:`LinkProcess`; None if it died before it reported
    started)."""

    pid: int | None = None
    start_ticks: int | None = None


class DeathWatch:
    """A pidfd on one process: readable once the process has exited (Linux >= 5.3).

    Owned by one actor, used on its actor thread only; never blocks.
    """

    def __init__(self) -> None:
        self.fd: int | None = None
        self.process: tuple[int, int] | None = None  # (pid, start ticks)

    def watch(self, pid: int, start_ticks: int) -> bool:
        """Watch process ``pid`` if it is the one started at ``start_ticks`` (alive or not yet
        reaped); False (nothing watched) if it is gone or the kernel has no pidfd."""
        self.close()
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):  # gone (ProcessLookupError), or no pidfd here
            return False
        if process_identity(pid) != start_ticks:  # the pid was taken by a later process
            os.close(fd)
            return False
        self.fd, self.process = fd, (pid, start_ticks)
        return True

    def exited(self, ready: list[int]) -> tuple[int, int] | None:
        """The watched process, if ``ready`` (a WatchMessage's fds) says it exited."""
        if self.fd is None or self.fd not in ready:
            return None
        readable, _, _ = select.select([self.fd], [], [], 0)
        return self.process if readable else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = self.process = None


class GatewayMonitor(HealthSubscribers, TaktoraActor):
    """See the module docstring. ``args``: ``config`` (the gateway's
    :class:`~taktora.connectors.gateway.config.GatewayConfig`), ``subscribers``."""

    def on_start(self) -> None:
        config = self.args.get("config")
        if not isinstance(config, GatewayConfig):
            raise ConnectorError(f"monitor {self.name!r}: args['config'] must be a "
                                 f"GatewayConfig, got {type(config).__name__}")
        self.gateway = config.name
        self.outbound = [d.name for d in config.channels if d.direction is Direction.OUTBOUND]
        self.inbound = [d.name for d in config.channels if d.direction is Direction.INBOUND]
        self.block_path = counters_path(config.iox_prefix or isolation.prefix_from_env(),
                                        str(self.args.get("ledger") or config.name))
        self.block_path.unlink(missing_ok=True)  # an earlier run's: this ledger starts at 0
        self.subscribers: list[Any] = list(self.args.get("subscribers", ()))
        self.health = HealthMachine(self.gateway)
        self.health.subscribe(self._fan_out)
        self.incarnation: str | None = None
        self.ended: collections.deque[str] = collections.deque(maxlen=ENDED_MEMORY)
        self.exits = 0
        self.watch = DeathWatch()
        self.watch_downs = 0
        self.reported: tuple[int, int] | None = None  # a death the watch saw, until the notice
        self._fan_out(self.health.last_event)  # the initial Connecting

    def on_stop(self) -> None:
        if hasattr(self, "watch"):
            self.watch.close()
        if hasattr(self, "block_path"):
            self.block_path.unlink(missing_ok=True)

    def receiveMessage(self, msg: Any, sender: Any) -> Any:  # noqa: N802 - Thespian's name
        """The base's entry point, plus the death watch: Thespian's loop watches the pidfd
        for the next wait (a ``ThespianWatch`` holds until the next message) and delivers a
        ``WatchMessage`` once it is readable."""
        if isinstance(msg, WatchMessage):
            if self.started and not self.crashed:
                self._guard(lambda: self._watch_fired(msg.ready), None, None)
        else:
            super().receiveMessage(msg, sender)
        watch: DeathWatch | None = getattr(self, "watch", None)
        return None if watch is None or watch.fd is None else ThespianWatch([watch.fd])

    @handles(LinkProcess)
    def _link_process(self, msg: LinkProcess, sender: Any) -> None:
        self.watch.close()
        if msg.namespace and msg.namespace == pid_namespace() and msg.pid != os.getpid():
            self.watch.watch(msg.pid, msg.start_ticks)

    def _watch_fired(self, ready: list[int]) -> None:
        process = self.watch.exited(ready)
        if process is None:
            return
        self.watch.close()
        self.reported = process
        self._end_incarnation()
        if self.health.state is not D:  # a death with notice is Down already (its own event)
            self.watch_downs += 1
            self._follow(D, "exited: killed")

    def _end_incarnation(self) -> None:
        if self.incarnation is not None:
            self.ended.append(self.incarnation)
            self.incarnation = None

    def _fan_out(self, event: HealthEvent) -> None:
        log.info("gateway %s: health %s -> %s (%s)", self.gateway,
                 event.previous.value if event.previous else "-", event.state.value, event.reason)
        for sub in self.subscribers:
            self.send(sub, event)

    def _follow(self, state: HealthState, reason: str) -> None:
        """Move to ``state``; a step the table does not allow (a new incarnation's Connecting
        after an Up the monitor never saw end) goes through Down first."""
        current = self.health.state
        if state is current:
            return
        if state not in TRANSITIONS[current]:
            self.health.transition(D, f"gateway restarted ({reason})")
        self.health.transition(state, reason)

    @handles(LinkHealth)
    def _link_health(self, msg: LinkHealth, sender: Any) -> None:
        if msg.incarnation in self.ended:
            return  # a dead incarnation's late event
        if msg.incarnation != self.incarnation:
            if self.incarnation is not None:
                self.ended.append(self.incarnation)
            self.incarnation = msg.incarnation
        self._follow(msg.event.state, msg.event.reason)

    @handles(LinkExited)
    def _link_exited(self, msg: LinkExited, sender: Any) -> None:
        self.exits += 1
        if isinstance(msg, LinkProcessExited) and msg.pid is not None and \
                (msg.pid, msg.start_ticks) == self.reported:
            self.reported = None  # the watch saw this death first: no second Down
            return
        self.watch.close()  # it is this incarnation's process: the notice came first
        self._end_incarnation()
        self._follow(D, f"exited: {msg.reason}")

    def current_event(self) -> HealthEvent:
        """A new subscriber gets the current state at once."""
        return self.health.last_event

    @handles(GetHealth)
    def _get_health(self, msg: GetHealth, sender: Any) -> HealthReply:
        state = self.health.state
        return HealthReply(correlation_id=msg.correlation_id, source=self.gateway, state=state,
                           sources={self.gateway: state}, last_event=self.health.last_event)

    @handles(GetStats)
    def _get_stats(self, msg: GetStats, sender: Any) -> StatsReply:
        """Answered here only while the gateway actor is not running (restarting)."""
        stats: dict[str, Any] = {"health": self.health.state.value, "restarting": True,
                                 "exits": self.exits, "watch_downs": self.watch_downs,
                                 "watching": self.watch.process is not None}
        try:
            with SharedCounters.open(self.block_path) as block:
                totals = block_totals(block, self.outbound, self.inbound)
        except TransportError:  # no incarnation counted yet
            totals = {}
        stats["incarnations"] = totals.pop("incarnations", 0)
        for key, n in sorted(totals.items()):
            stats[f"total.{key}"] = n
        return StatsReply(correlation_id=msg.correlation_id, source=self.gateway, stats=stats)
