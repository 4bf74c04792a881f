"""Thread attributes for executor threads: name, CPU affinity, SCHED_FIFO priority (Linux).

:meth:`ThreadAttrs.apply` changes the *calling* thread (Linux applies ``sched_setaffinity`` and
``sched_setscheduler`` with pid 0 to the calling thread only). The executor calls it at the
start of ``run()`` in its own thread and in each pool worker. When the OS refuses (no
privilege, a CPU that does not exist) it raises :class:`ThreadAttributeError` naming the
attribute and the reason, unless ``best_effort=True``: then it logs a warning, keeps the
default and reports what was refused in the returned :class:`AppliedAttrs`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Any

import attrs
from taktora.actors.executor.errors import ExecutorConfigError, ThreadAttributeError
from taktora.transport.validators import Checks

log = logging.getLogger("taktora.actors.thread_attrs")

_PR_SET_NAME = 15

_v = Checks(ExecutorConfigError)
_cpu_set = _v.predicate(lambda cpus: bool(cpus) and all(c >= 0 for c in cpus),
                        "a non-empty set of CPU ids >= 0 (os.sched_getaffinity(0) lists them)")


def _to_cpus(value: Any) -> frozenset[int] | None:
    return None if value is None else frozenset(int(c) for c in value)


@attrs.frozen
class AppliedAttrs:
    """What :meth:`ThreadAttrs.apply` did: ``refused`` names each attribute the OS refused."""

    name: str | None
    cpus: frozenset[int] | None
    fifo_priority: int | None
    refused: tuple[str, ...]


@attrs.frozen
class ThreadAttrs:
    """Requested attributes; ``None`` leaves an attribute as it is.

    ``name`` (at most 15 bytes reach the kernel's thread name), ``cpus`` (CPU ids for
    affinity), ``fifo_priority`` (1..99, SCHED_FIFO; needs CAP_SYS_NICE or root),
    ``best_effort`` (log and go on instead of raising when refused).
    """

    name: str | None = None
    cpus: frozenset[int] | None = attrs.field(default=None, converter=_to_cpus,
                                              validator=_v.optional(_cpu_set))
    fifo_priority: int | None = attrs.field(default=None,
                                            validator=_v.optional(_v.integer(ge=1, le=99)))
    best_effort: bool = False

    def apply(self) -> AppliedAttrs:
        """Apply to the calling thread; blocks only for the system calls.

        Raises :class:`ThreadAttributeError` when refused and not ``best_effort``.
        """
        refused: list[str] = []
        if self.name is not None:
            threading.current_thread().name = self.name
            _set_kernel_name(self.name)
        if self.cpus is not None:
            try:
                os.sched_setaffinity(0, self.cpus)
            except OSError as exc:
                self._refuse(refused, "cpus", f"CPU affinity {sorted(self.cpus)}", exc)
        if self.fifo_priority is not None:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.fifo_priority))
            except OSError as exc:
                self._refuse(refused, "fifo_priority",
                             f"SCHED_FIFO priority {self.fifo_priority}", exc)
        return AppliedAttrs(
            name=self.name,
            cpus=None if "cpus" in refused else self.cpus,
            fifo_priority=None if "fifo_priority" in refused else self.fifo_priority,
            refused=tuple(refused),
        )

    def _refuse(self, refused: list[str], field: str, what: str, exc: OSError) -> None:
        msg = (f"the OS refused {what} for thread {threading.current_thread().name!r}: "
               f"{exc.strerror or exc} (errno {exc.errno}); "
               + ("check the CPU ids (os.sched_getaffinity(0) lists the allowed ones)"
                  if field == "cpus" else "run with CAP_SYS_NICE/root or an rtprio limit")
               + ", or pass best_effort=True to go on without it")
        if not self.best_effort:
            raise ThreadAttributeError(msg) from exc
        log.warning("%s (best effort: continuing without it)", msg)
        refused.append(field)


def _set_kernel_name(name: str) -> None:
    lib = ctypes.util.find_library("c")
    if lib is None:  # pragma: no cover - always found on Linux
        return
    libc = ctypes.CDLL(lib, use_errno=True)
    libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
