"""The child side of :mod:`taktora.actors.control.dedicated`: what the spawned process runs.

Everything here runs in the child process. :func:`child_main` runs on its main thread (which
becomes the executor thread); :func:`_child_control` on the thread ``taktora-dedicated-ctl``,
started before the process options are applied (so it keeps the default scheduling and every
CPU), which answers the parent's ``stop`` and ``snapshot`` requests and stops the executor when
the control pipe ends (the parent is gone). The option values and errors live here too (the
child needs them, and :mod:`.dedicated`, which re-exports them, imports this module).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import attrs
from taktora.actors.errors import ActorConfigError, ActorError, ControlError
from taktora.transport.validators import Checks

log = logging.getLogger("taktora.actors.control.dedicated")

_PR_SET_NAME, _PR_SET_PDEATHSIG = 15, 1
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_v = Checks(ActorConfigError)
GC_POLICIES = ("default", "freeze")


class DedicatedError(ActorError):
    """A dedicated executor's process could not start, died, or did not answer in time."""


class DedicatedCapabilityError(DedicatedError, ControlError):
    """The OS refused a process option (affinity, priority, mlock) and ``best_effort`` is off;
    the message names the option and what to do. A ``ControlError``: a StartExecutor request
    is rejected with it and the host keeps running."""


def _cpus(value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    try:
        return frozenset(int(c) for c in value)
    except (TypeError, ValueError) as exc:
        raise ActorConfigError(f"invalid DedicatedOptions field 'affinity': expected CPU ids "
                               f"(e.g. [0, 1]), got {value!r}") from exc


@attrs.frozen(kw_only=True)
class DedicatedOptions:
    """Process options of a dedicated executor (applied in the child before the build).

    ``affinity``: CPU ids; ``priority``: SCHED_FIFO priority 1..99 (CAP_SYS_NICE / root);
    ``mlock``: ``mlockall(MCL_CURRENT | MCL_FUTURE)`` (CAP_IPC_LOCK or ``ulimit -l``);
    ``best_effort``: log a refusal instead of failing; ``gc``: ``"default"`` or ``"freeze"``;
    ``gc_period_s``: how often the ``taktora-gc`` item collects under ``"freeze"`` (the full
    collection before ``run()`` takes ~8 ms here: intervals attached at build time count the
    ticks it delays as missed, once, at startup).
    """

    affinity: frozenset[int] | None = attrs.field(default=None, converter=_cpus, validator=_v.optional(
        _v.predicate(lambda c: bool(c) and all(x >= 0 for x in c), "a non-empty set of CPU ids >= 0")))
    priority: int | None = attrs.field(default=None, validator=_v.optional(_v.integer(ge=1, le=99)))
    mlock: bool = attrs.field(default=False, validator=_v.instance(bool))
    best_effort: bool = attrs.field(default=False, validator=_v.instance(bool))
    gc: str = attrs.field(default="default", validator=_v.one_of(GC_POLICIES))
    gc_period_s: float = attrs.field(default=0.1, validator=_v.positive())

    def describe(self) -> dict[str, Any]:
        """The options as plain values (for stats)."""
        return {"affinity": None if self.affinity is None else sorted(self.affinity),
                "priority": self.priority, "mlock": self.mlock, "best_effort": self.best_effort,
                "gc": self.gc, "gc_period_s": self.gc_period_s}



class _Link:
    """The child's end of the control pipe: sends from any thread under one lock."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, *msg: Any) -> None:
        with self.lock, contextlib.suppress(OSError, ValueError):
            self.conn.send(msg)


class _PipeLogHandler(logging.Handler):
    """Child: sends each record (message formatted, traceback as text) to the parent."""

    def __init__(self, link: _Link) -> None:
        super().__init__()
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            d = dict(record.__dict__)
            d["msg"], d["args"] = record.getMessage(), None
            if record.exc_info:
                d["exc_text"] = logging.Formatter().formatException(record.exc_info)
            d["exc_info"] = None
            self.link.send("log", d)
        except Exception:  # never let logging break the executor
            self.handleError(record)


class _GcIdle:
    """``gc="freeze"``: the ``taktora-gc`` item's collection of generations 0-1, timed."""

    def __init__(self) -> None:
        self.collections = 0
        self.total_us = 0.0
        self.max_us = 0.0

    def __call__(self, ctx: Any) -> None:
        t0 = time.perf_counter_ns()
        gc.collect(1)
        us = (time.perf_counter_ns() - t0) / 1000
        self.collections += 1
        self.total_us += us
        self.max_us = max(self.max_us, us)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _refused(what: str, err: int, fix: str, best_effort: bool, refused: list[str],
             field: str) -> None:
    msg = (f"the OS refused {what} for the dedicated executor process {os.getpid()}: "
           f"{os.strerror(err)} (errno {err}); {fix}, or pass best_effort=True to go on "
           "without it")
    if not best_effort:
        raise DedicatedCapabilityError(msg)
    log.warning("%s (best effort: continuing without it)", msg)
    refused.append(field)


def _apply(options: DedicatedOptions, name: str) -> list[str]:
    """Child, main thread: apply affinity, priority and mlock; return the refused ones."""
    refused: list[str] = []
    _libc().prctl(_PR_SET_NAME, f"tk-{name}".encode()[:15], 0, 0, 0)  # PR_SET_NAME: visible in ps/top
    if options.affinity is not None:
        try:
            os.sched_setaffinity(0, options.affinity)
        except OSError as exc:
            _refused(f"CPU affinity {sorted(options.affinity)}", exc.errno or 0,
                     f"use CPU ids from {sorted(os.sched_getaffinity(0))}",
                     options.best_effort, refused, "affinity")
    if options.priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(options.priority))
        except OSError as exc:
            _refused(f"SCHED_FIFO priority {options.priority}", exc.errno or 0,
                     "run as root, grant CAP_SYS_NICE (setcap cap_sys_nice+ep on the "
                     "interpreter) or raise the rtprio limit (ulimit -r)",
                     options.best_effort, refused, "priority")
    if options.mlock:
        libc = _libc()
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
            _refused("mlockall(MCL_CURRENT|MCL_FUTURE)", ctypes.get_errno(),
                     "run as root, grant CAP_IPC_LOCK or raise the memlock limit "
                     "(ulimit -l unlimited; LimitMEMLOCK=infinity under systemd)",
                     options.best_effort, refused, "mlock")
    return refused


def _build(recipe: Any, prefix: str | None) -> Any:
    """Child: the executor from a recipe (see the module docstring)."""
    if isinstance(recipe, str):
        module, sep, fn = recipe.partition(":")
        if not sep or not module or not fn:
            raise ActorError(f"invalid executor factory {recipe!r}: expected 'module:function'")
        try:
            return getattr(importlib.import_module(module), fn)()
        except (ImportError, AttributeError) as exc:
            raise ActorError(f"cannot import executor factory {recipe!r}: {exc}") from exc
    build = getattr(recipe, "build", None)
    if callable(build):
        try:
            takes_prefix = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                          p.VAR_POSITIONAL)
                               for p in inspect.signature(build).parameters.values())
        except (TypeError, ValueError):
            takes_prefix = False
        return build(prefix) if takes_prefix else build()
    return recipe()


def _plain(value: Any) -> Any:
    return attrs.asdict(value) if attrs.has(type(value)) else value


def child_main(recipe: Any, options: DedicatedOptions, name: str, conn: Any, out: Any,
                parent_pid: int, log_level: int, prefix: str | None) -> None:
    """The child process's entry point (its main thread); see :mod:`.dedicated`. Exits 0
    after the executor's ``run()`` returned, 1 after it raised, 2 when the start failed."""
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        return
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    out.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    link = _Link(conn)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_PipeLogHandler(link))
    root.setLevel(log_level)
    holder: dict[str, Any] = {}
    stop = threading.Event()
    threading.Thread(target=_child_control, args=(link, holder, stop), daemon=True,
                     name="taktora-dedicated-ctl").start()  # before _apply: not RT, any CPU
    try:
        refused = _apply(options, name)
        executor = _build(recipe, prefix)
        gc_idle = _gc_policy(executor, options)
    except Exception as exc:
        link.send("failed", f"{type(exc).__name__}: {exc}", True)
        sys.exit(2)
    holder.update(executor=executor, gc=gc_idle)
    link.send("ready", {"pid": os.getpid(), "refused": refused,
                        "affinity": sorted(os.sched_getaffinity(0)),
                        "policy": "SCHED_FIFO" if os.sched_getscheduler(0) == os.SCHED_FIFO
                        else "SCHED_OTHER", "priority": os.sched_getparam(0).sched_priority,
                        "frozen": gc.get_freeze_count(), "gc_enabled": gc.isenabled(),
                        "locked_kb": _locked_kb()})
    code = 0
    try:
        if not stop.is_set():
            executor.run()
        link.send("exited", int(getattr(executor, "last_signal", 0) or 0))
    except BaseException as exc:
        link.send("failed", f"{type(exc).__name__}: {exc}", False)
        code = 1
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("dedicated executor %s: close() raised", name)
    sys.exit(code)


def _locked_kb() -> int:
    """VmLck of this process (memory locked by mlock), in KiB."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def _gc_policy(executor: Any, options: DedicatedOptions) -> _GcIdle | None:
    if options.gc != "freeze":
        return None
    gc.collect()
    gc.freeze()
    add = getattr(executor, "add", None)
    if add is None:
        log.warning("gc='freeze': the executor has no add(): objects are frozen but the "
                    "collector stays enabled (no idle-time collection item)")
        return None
    from taktora.actors.executor import ErrorPolicy, every, item

    idle = _GcIdle()
    add(item(idle, [every(options.gc_period_s)], name="taktora-gc",
             error_policy=ErrorPolicy.LOG_AND_CONTINUE))
    gc.disable()
    return idle


def _child_control(link: _Link, holder: dict[str, Any], stop: threading.Event) -> None:
    """Child, thread ``taktora-dedicated-ctl``: answers the parent until the pipe closes."""
    while True:
        try:
            msg = link.conn.recv()
        except (EOFError, OSError):  # the parent is gone: stop; die if that does not work
            log.warning("dedicated executor: the parent (pid %d) is gone; stopping",
                        os.getppid())
            _child_stop(holder, stop)
            threading.Timer(5.0, os._exit, (3,)).start()
            return
        if msg[0] == "stop":
            _child_stop(holder, stop)
        elif msg[0] == "snapshot":
            link.send("reply", msg[1], _child_snapshot(holder))


def _child_stop(holder: dict[str, Any], stop: threading.Event) -> None:
    stop.set()
    executor = holder.get("executor")
    if executor is not None:
        executor.stoppable().stop()


def _child_snapshot(holder: dict[str, Any]) -> dict[str, Any]:
    executor = holder.get("executor")
    out: dict[str, Any] = {"monitor": None, "monitor_error": "", "stats": None}
    if executor is None:
        out["monitor_error"] = "the executor is not built yet"
        return out
    try:
        out["monitor"] = _plain(executor.monitor_snapshot())
    except Exception as exc:
        out["monitor_error"] = f"{type(exc).__name__}: {exc}"
    stats = getattr(executor, "stats", None)
    if callable(stats):
        with contextlib.suppress(Exception):
            out["stats"] = _plain(stats())
    idle: _GcIdle | None = holder.get("gc")
    out["gc"] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                 "counts": gc.get_count(), "idle_collections": idle.collections if idle else 0,
                 "idle_collect_max_us": round(idle.max_us, 1) if idle else 0.0,
                 "idle_collect_total_us": round(idle.total_us, 1) if idle else 0.0}
    return out


