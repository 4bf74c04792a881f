"""Observer hooks: executor start/stop and item start/end/error.

Hooks run synchronously in the thread that runs the item (the executor thread or a pool
worker) or the executor's run loop, so they must be quick and must not block. An exception a
hook raises is logged once per hook and counted (``Executor.stats().observer_errors``); it never
stops the executor and never hides an item error.
"""

from __future__ import annotations

import logging
from typing import Any


class Observer:
    """No-op base; override what you need."""

    def on_executor_start(self, executor: str) -> None:
        """The run loop starts (executor thread)."""

    def on_executor_stop(self, executor: str, error: BaseException | None) -> None:
        """The run loop ended; ``error`` is the item error that stopped it, if any."""

    def on_item_start(self, item: str, now_ns: int) -> None:
        """An item is about to run (the thread that runs it)."""

    def on_item_end(self, item: str, start_ns: int, end_ns: int, ok: bool) -> None:
        """An item returned (``ok``) or raised (``not ok``, after ``on_item_error``)."""

    def on_item_error(self, item: str, error: BaseException) -> None:
        """An item raised ``error``; its error policy decides what follows."""


class LoggingObserver(Observer):
    """Logs executor start/stop at INFO, item errors at ERROR, item runs at DEBUG."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("taktora.actors.observer")

    def on_executor_start(self, executor: str) -> None:
        self.log.info("executor %s started", executor)

    def on_executor_stop(self, executor: str, error: BaseException | None) -> None:
        if error is None:
            self.log.info("executor %s stopped", executor)
        else:
            self.log.info("executor %s stopped by %r", executor, error)

    def on_item_end(self, item: str, start_ns: int, end_ns: int, ok: bool) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("item %s %s in %.1f us", item, "ran" if ok else "failed",
                           (end_ns - start_ns) / 1000)

    def on_item_error(self, item: str, error: BaseException) -> None:
        self.log.error("item %s raised %r", item, error)


class OpenTelemetryObserver(Observer):
    """One span per item run and per executor run, through the global tracer provider.

    Needs the ``otel`` extra (``pip install taktora[otel]``); opentelemetry is imported when
    this class is instantiated, not when the module is. Spans are created in the thread that
    runs the item.
    """

    def __init__(self, tracer_name: str = "taktora.executor", tracer: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "OpenTelemetryObserver needs opentelemetry: pip install 'taktora[otel]'"
            ) from exc
        self._trace = trace
        self.tracer = tracer if tracer is not None else trace.get_tracer(tracer_name)
        self._spans: dict[str, Any] = {}

    def on_item_start(self, item: str, now_ns: int) -> None:
        self._spans[item] = self.tracer.start_span(item, start_time=None)

    def on_item_error(self, item: str, error: BaseException) -> None:
        span = self._spans.get(item)
        if span is not None:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, repr(error)))

    def on_item_end(self, item: str, start_ns: int, end_ns: int, ok: bool) -> None:
        span = self._spans.pop(item, None)
        if span is not None:
            span.set_attribute("taktora.item.duration_us", (end_ns - start_ns) / 1000)
            span.end()

    def on_executor_start(self, executor: str) -> None:
        span = self.tracer.start_span(f"executor {executor}")
        span.end()

    def on_executor_stop(self, executor: str, error: BaseException | None) -> None:
        span = self.tracer.start_span(f"executor {executor} stop")
        if error is not None:
            span.record_exception(error)
        span.end()
