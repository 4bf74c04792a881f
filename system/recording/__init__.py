"""taktora.system.recording: see, record and replay what flows through iceoryx2.

Channel discovery from iceoryx2's own service listing, taps for ``echo`` / ``hz`` / ``bw``,
the channel view of ``top``, the MCAP :class:`Recorder`, the :class:`Player`, and reading
recordings back (``info``, ``recover``). spec/recording.rst describes the file layout and the threads.
"""

from taktora.system.recording.discovery import ChannelInfo, list_channels, select, tap_spec
from taktora.system.recording.errors import (
    ChannelNotFoundError,
    RecordingError,
    RecordingFileError,
)
from taktora.system.recording.player import PlaybackReport, Played, Player
from taktora.system.recording.reader import (
    ChannelSummary,
    RecordingInfo,
    iter_messages,
    read_info,
    recover,
)
from taktora.system.recording.recorder import (
    ChannelStats,
    Recorder,
    RecorderItem,
    RecorderStats,
)
from taktora.system.recording.top import ChannelRow, ChannelWatch

__all__ = [
    "ChannelInfo",
    "ChannelNotFoundError",
    "ChannelRow",
    "ChannelStats",
    "ChannelSummary",
    "ChannelWatch",
    "PlaybackReport",
    "Played",
    "Player",
    "Recorder",
    "RecorderItem",
    "RecorderStats",
    "RecordingError",
    "RecordingFileError",
    "RecordingInfo",
    "iter_messages",
    "list_channels",
    "read_info",
    "recover",
    "select",
    "tap_spec",
]
