"""Errors of seeing, recording and replaying channels (``taktora.system.recording``)."""

from __future__ import annotations

from taktora.system.errors import SystemError_


class RecordingError(SystemError_):
    """A channel could not be found, tapped, recorded or replayed; the message says why."""


class ChannelNotFoundError(RecordingError):
    """No iceoryx2 service of that name (or matching that pattern) exists under the prefix."""


class RecordingFileError(RecordingError):
    """A recording file is missing, not MCAP, not taktora's, or truncated."""
