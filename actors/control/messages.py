"""Control-plane messages: frozen, validated, picklable attrs classes.

Every message a taktora actor accepts or sends lives here (or, for one actor's private
protocol, in that actor's module), so that it pickles by reference to an importable module and
never to ``__main__``. Requests derive from :class:`ControlMessage` and carry a fresh
``correlation_id``; replies derive from :class:`Reply` and carry the id of the request they
answer, so a caller that receives an unrelated message can tell it apart (Thespian's ``ask``
returns the *next* message, not necessarily the reply).

Invalid field values fail at construction with :class:`~taktora.actors.errors.ControlError`
naming the field. Nothing here imports Thespian: the actor addresses some messages carry are
typed ``Any``.
"""

from __future__ import annotations

import enum
import itertools
import os
from collections.abc import Mapping
from typing import Any

import attrs
from taktora.actors.errors import ControlError
from taktora.actors.models.health import HealthEvent, HealthState
from taktora.transport.validators import Checks, to_tuple

_v = Checks(ControlError)

_counter = itertools.count(1)


def new_correlation_id() -> str:
    """A correlation id unique within this host: ``"<pid hex>-<counter hex>"``.

    Cheap (no uuid); safe from any thread (``itertools.count`` is atomic under the GIL).
    """
    return f"{os.getpid():x}-{next(_counter):x}"


# --- requests ---------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class ControlMessage:
    """Base of every request; ``correlation_id`` is filled in automatically."""

    correlation_id: str = attrs.field(factory=new_correlation_id, validator=_v.string(nonempty=True))


@attrs.frozen(kw_only=True)
class Pause(ControlMessage):
    """Stop processing data but keep connections and state (answered with :class:`Ack`)."""


@attrs.frozen(kw_only=True)
class Resume(ControlMessage):
    """Undo :class:`Pause` (answered with :class:`Ack`)."""


@attrs.frozen(kw_only=True)
class Reconnect(ControlMessage):
    """Drop and re-establish the protocol connection now (answered with :class:`Ack`)."""


@attrs.frozen(kw_only=True)
class GetHealth(ControlMessage):
    """Ask for the current health (answered with :class:`HealthReply`)."""


@attrs.frozen(kw_only=True)
class GetStats(ControlMessage):
    """Ask for counters (answered with :class:`StatsReply`)."""


@attrs.frozen(kw_only=True)
class GetTree(ControlMessage):
    """Ask a supervisor for its supervision tree (answered with :class:`TreeReply`)."""


@attrs.frozen(kw_only=True)
class Configure(ControlMessage):
    """Apply settings (string keys, picklable values).

    A gateway takes a *partial* update of its connector's settings: each key is a top-level
    settings key or a dotted path into nested tables and arrays (``"buses.0.bitrate"``); a
    table value is merged into the current table, anything else replaces the value. It answers
    :class:`ConfigReply` (what changed and how), or ``ErrorReply(REJECTED)`` naming the key and
    the reason when the update does not fit (then nothing is applied). Other actors may answer
    :class:`Ack`.
    """

    settings: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.str_keys())


@attrs.frozen(kw_only=True)
class GetConfig(ControlMessage):
    """Ask a gateway for its connector's current settings (answered with :class:`ConfigReply`)."""


@attrs.frozen(kw_only=True)
class Shutdown(ControlMessage):
    """Stop in order and exit (answered with :class:`Ack` before the actor exits)."""


@attrs.frozen(kw_only=True)
class Route(ControlMessage):
    """Deliver ``message`` to the descendant named by ``path`` (child ids from a supervisor).

    The final recipient answers ``reply_to`` (an actor address) directly. An empty path means
    "the actor that receives this".
    """

    path: tuple[str, ...] = attrs.field(
        converter=to_tuple, validator=_v.tuple_of(_v.string(nonempty=True), "non-empty child ids"))
    message: ControlMessage = attrs.field(validator=_v.instance(ControlMessage))
    reply_to: Any = None


# --- replies ----------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Reply:
    """Base of every reply; ``correlation_id`` is the id of the request it answers."""

    correlation_id: str = attrs.field(validator=_v.string())


@attrs.frozen(kw_only=True)
class Ack(Reply):
    """The request was carried out."""

    detail: str = attrs.field(default="", validator=_v.string())


class ErrorKind(enum.Enum):
    """Why a request failed."""

    UNKNOWN_MESSAGE = "unknown_message"  # the actor has no handler for this class
    INVALID_MESSAGE = "invalid_message"  # not a taktora message at all, or fields out of range
    REJECTED = "rejected"  # the handler refused it (ControlError); the actor keeps running
    CRASHED = "crashed"  # the handler raised; the actor is being restarted by its supervisor
    NOT_FOUND = "not_found"  # a routed path names no such child


@attrs.frozen(kw_only=True)
class ErrorReply(Reply):
    """The request failed; ``message_type`` names the request class, ``detail`` the reason."""

    kind: ErrorKind = attrs.field(validator=_v.instance(ErrorKind))
    message_type: str = attrs.field(validator=_v.string())
    detail: str = attrs.field(default="", validator=_v.string())


@attrs.frozen(kw_only=True)
class HealthReply(Reply):
    """Current health of ``source`` (the aggregate when several sources are monitored)."""

    source: str = attrs.field(validator=_v.string())
    state: HealthState = attrs.field(validator=_v.instance(HealthState))
    sources: Mapping[str, HealthState] = attrs.field(factory=dict)
    last_event: HealthEvent | None = None


@attrs.frozen(kw_only=True)
class StatsReply(Reply):
    """Counters of ``source`` (string keys; numbers or short strings)."""

    source: str = attrs.field(validator=_v.string())
    stats: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.str_keys())


#: How a :class:`ConfigReply` says the settings took effect.
CONFIG_HOW = ("live", "reconnect", "unchanged")


@attrs.frozen(kw_only=True)
class ConfigReply(Reply):
    """A gateway's connector settings, after a :class:`Configure` or for a :class:`GetConfig`.

    ``gateway``: its name; ``connector``: its connector reference (``udp``, ``module:Class``);
    ``settings``: the whole current settings as a plain nested table (what the project's
    converter unstructures them to; secrets such as passwords are shown as ``"<redacted>"``);
    ``applied``: the dotted key paths that changed (empty for GetConfig and for an update
    that changed nothing); ``how``: ``"live"`` (the running connector took them),
    ``"reconnect"`` (the connector was rebuilt and reconnected) or ``"unchanged"``.
    """

    gateway: str = attrs.field(validator=_v.string(nonempty=True))
    connector: str = attrs.field(validator=_v.string(nonempty=True))
    settings: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.str_keys())
    applied: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, validator=_v.tuple_of(
        _v.string(nonempty=True), "dotted key paths"))
    how: str = attrs.field(default="unchanged", validator=_v.one_of(CONFIG_HOW))


@attrs.frozen(kw_only=True)
class ChildInfo:
    """One node of a supervision tree as a supervisor reports it.

    ``state`` is one of starting, running, stopping, backoff, stopped, failed; ``children`` and
    ``strategy`` are set for supervisors; ``events`` is the supervisor's recent start/stop log.
    """

    id: str = attrs.field(validator=_v.string())
    state: str = attrs.field(validator=_v.string())
    restarts: int = 0
    kind: str = "worker"
    restart: str = "permanent"
    address: str = ""
    pid: int | None = None
    strategy: str | None = None
    children: tuple[ChildInfo, ...] = ()
    events: tuple[str, ...] = ()

    def find(self, path: tuple[str, ...]) -> ChildInfo | None:
        """The descendant at ``path`` (child ids), or None."""
        node: ChildInfo | None = self
        for part in path:
            assert node is not None
            node = next((c for c in node.children if c.id == part), None)
            if node is None:
                return None
        return node


@attrs.frozen(kw_only=True)
class TreeReply(Reply):
    """The supervision tree below (and including) the supervisor that answered."""

    tree: ChildInfo


# --- supervision protocol (supervisor <-> child) ----------------------------------------------
@attrs.frozen(kw_only=True)
class Supervised:
    """First message a supervisor sends a child it created: who supervises it, its id, args."""

    supervisor: Any
    child_id: str = attrs.field(validator=_v.string(nonempty=True))
    args: Mapping[str, Any] = attrs.field(factory=dict, validator=_v.str_keys())


@attrs.frozen(kw_only=True)
class ChildStarted:
    """A child finished ``on_start`` (sent to its supervisor)."""

    child_id: str
    pid: int


@attrs.frozen(kw_only=True)
class ChildCrashed:
    """A child's handler raised (or a nested supervisor gave up); it is about to be stopped."""

    child_id: str
    reason: str


@attrs.frozen(kw_only=True)
class ChildStopping:
    """A child is exiting on purpose (a normal exit: transient children are not restarted)."""

    child_id: str
    reason: str = "normal"


@attrs.frozen(kw_only=True)
class TreeUpdate:
    """A nested supervisor pushes its subtree to its parent after every change."""

    child_id: str
    tree: ChildInfo
