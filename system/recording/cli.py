"""The ``taktora`` subcommands of this package: channels, echo, hz, bw, top
(:mod:`.cli_watch`), record, replay, info, recover (:mod:`.cli_record`)."""

from __future__ import annotations

from typing import Any

from taktora.system.recording import cli_record, cli_watch


def register(subparsers: Any) -> None:
    """channels, echo, hz, bw, top, record, replay, info, recover."""
    cli_watch.register(subparsers)
    cli_record.register(subparsers)
