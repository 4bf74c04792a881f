"""One-line log records for the command line: ``LEVEL logger: message (ExcType: reason)``.

``taktora run`` logs this way unless ``--verbose`` asks for tracebacks: a gateway that crashes
on start is reported, but a user reading the terminal sees one line per event, not a Python
traceback. Works for records formatted in this process and for records a Thespian logger
process received from an actor (those carry the traceback as ``exc_text`` only).
"""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    """A formatter that replaces tracebacks by their last line."""

    def __init__(self, fmt: str | None = FORMAT, *args: Any, **kwargs: Any) -> None:
        super().__init__(fmt, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        """The record on one line (blocks nowhere; runs on the logging thread)."""
        summary = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            summary = f"{type(exc).__name__}: {exc}"
        elif record.exc_text:
            lines = [line for line in record.exc_text.splitlines() if line.strip()]
            summary = lines[-1].strip() if lines else ""
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if summary and summary not in text:
            text = f"{text} ({summary})"
        return " ".join(text.splitlines())


def one_line_logging(level: str = "WARNING") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: ``level`` and worse to stderr, one line each
    (usable as Thespian ``logDefs`` too: its logger process builds the formatter by name)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"one_line": {"()": f"{__name__}.OneLineFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "level": level,
                                "formatter": "one_line"}},
        "root": {"level": level, "handlers": ["stderr"]},
    }
