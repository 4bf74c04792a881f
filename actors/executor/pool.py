"""The executor's worker pool: N threads running pre-allocated tasks (``Executor(workers=N)``).

Internal to the executor (not exported). The executor thread submits tasks (single items,
chains, graph vertices: anything with ``run_in_pool()``) and then blocks in
:meth:`Pool.wait_idle` until every submitted task has finished, so no task outlives the wake
that started it. Each worker applies the executor's :class:`ThreadAttrs` when it starts; if the
OS refuses, the pool constructor joins the workers and re-raises the first refusal in the
thread that built the pool. A task that raises past its item's error policy is logged on the
``taktora.actors.executor`` logger and the worker goes on.
"""

from __future__ import annotations

import logging
import threading
from queue import SimpleQueue
from typing import Any

from taktora.actors.executor.thread_attrs import ThreadAttrs

log = logging.getLogger("taktora.actors.executor")


class Pool:
    """N worker threads taking pre-allocated task objects (``run_in_pool``) from a queue.

    The queue is unbounded: the executor never submits more than one wake's jobs (plus the
    graph vertices they make ready) before it waits for the pool to be idle.
    """

    def __init__(self, name: str, workers: int, attrs_: ThreadAttrs | None) -> None:
        """Start ``workers`` threads named ``{name}-worker-{i}`` and wait until each has applied
        ``attrs_``; re-raise the first refusal (:class:`ThreadAttributeError`) after joining
        them."""
        self.queue: SimpleQueue[Any] = SimpleQueue()
        self.cond = threading.Condition()
        self.outstanding = 0
        self.attrs = attrs_
        self.start_errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._work, name=f"{name}-worker-{i}",
                                         daemon=True) for i in range(workers)]
        self.started = threading.Barrier(workers + 1)
        for t in self.threads:
            t.start()
        self.started.wait()
        if self.start_errors:
            self.close()
            raise self.start_errors[0]

    def _work(self) -> None:
        """Worker thread: apply the attributes, then run tasks until a ``None`` arrives."""
        try:
            if self.attrs is not None:
                self.attrs.apply()
        except BaseException as exc:
            self.start_errors.append(exc)
        self.started.wait()
        q = self.queue
        cond = self.cond
        while True:
            task = q.get()
            if task is None:
                return
            try:
                task.run_in_pool()
            except BaseException:
                log.exception("pool task %r raised outside the error policy", task)
            finally:
                with cond:
                    self.outstanding -= 1
                    if self.outstanding == 0:
                        cond.notify_all()

    def submit(self, task: Any) -> None:
        """Queue ``task`` (executor thread, or a worker submitting graph successors); never
        blocks."""
        with self.cond:
            self.outstanding += 1
        self.queue.put(task)

    def wait_idle(self) -> None:
        """Block the calling thread (the executor thread) until every submitted task is done."""
        with self.cond:
            while self.outstanding:
                self.cond.wait()

    def close(self) -> None:
        """Stop the workers after the tasks already queued; blocks until they have exited."""
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()
