"""taktora.system.recording: see, record and replay what flows through iceoryx2.

Channel discovery from iceoryx2's own service listing, taps for ``echo`` / ``hz`` / ``bw``,
the channel view of ``top``, the MCAP :class:`Recorder` (in a thread of its own, or as an item
of a supervised item host: :func:`recorder_item`), the :class:`Player`, and reading recordings
back (``info``, ``recover``, :func:`frame`). spec/recording.rst describes the file layout and the threads.
"""

from taktora.system.recording.discovery import ChannelInfo, list_channels, select, tap_spec
from taktora.system.recording.errors import (
    ChannelNotFoundError,
    RecordingError,
    RecordingFileError,
)
from taktora.system.recording.hosted import recorder_item
from taktora.system.recording.player import PlaybackReport, Played, Player
from taktora.system.recording.reader import (
    ChannelSummary,
    Frame,
    RecordingInfo,
    frame,
    iter_messages,
    read_info,
    recover,
)
from taktora.system.recording.recorder import ChannelStats, RecorderItem, RecorderStats
from taktora.system.recording.recorder_thread import Recorder
from taktora.system.recording.top import ChannelRow, ChannelWatch

__all__ = [
    "ChannelInfo",
    "ChannelNotFoundError",
    "ChannelRow",
    "ChannelStats",
    "ChannelSummary",
    "ChannelWatch",
    "Frame",
    "PlaybackReport",
    "Played",
    "Player",
    "Recorder",
    "RecorderItem",
    "RecorderStats",
    "RecordingError",
    "RecordingFileError",
    "RecordingInfo",
    "frame",
    "iter_messages",
    "list_channels",
    "read_info",
    "recorder_item",
    "recover",
    "select",
    "tap_spec",
]
