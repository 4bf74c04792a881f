"""What wakes an item: trigger declarations.

An item returns a sequence of triggers from :meth:`Item.triggers`. The executor attaches each
one to its iceoryx2 WaitSet when the item is added and keeps the attachment for the executor's
lifetime. Trigger objects are plain declarations: they hold no OS resources themselves.

Kinds:

- :func:`on_data` - one or several channels (anything with ``.listener`` and
  ``consume_wakeups()``: a transport ``Subscriber``, ``Server``, ``Client``).
- :func:`on_request` / :func:`on_response` - the same for request/response ports (named apart
  so the firing kind is visible in :attr:`Context.trigger`).
- :func:`every` - an interval on absolute times ``start + k * period`` (see
  :mod:`taktora.actors.executor.timing`).
- :func:`deadline` - a channel that must deliver within ``timeout``; the item runs on data and
  on every missed deadline.
- :func:`on_fd` - a raw file descriptor or anything with ``fileno()`` (level-triggered: the item
  must read what is pending, or pass ``consume``).
- :func:`on_listener` - a raw iceoryx2 Listener (its events are consumed by the executor).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs
from taktora.actors.executor.errors import ExecutorConfigError, ExecutorTypeError
from taktora.actors.executor.timing import MissedTickPolicy
from taktora.transport.validators import Checks

_v = Checks(ExecutorConfigError)
_types = Checks(ExecutorTypeError)


class TriggerKind(enum.Enum):
    """Which kind of trigger fired (``ctx.kind``)."""

    DATA = "data"
    REQUEST = "request"
    RESPONSE = "response"
    INTERVAL = "interval"
    DEADLINE = "deadline"
    FD = "fd"
    LISTENER = "listener"


@runtime_checkable
class WakeSource(Protocol):
    """A port that pairs its channel with an iceoryx2 event listener (transport ports)."""

    @property
    def listener(self) -> Any:
        """The raw iceoryx2 Listener woken when the port has something to take."""

    def consume_wakeups(self) -> int:
        """Empty the listener without blocking; return how many wakeups were consumed."""


_wake_source = _types.predicate(
    lambda port: isinstance(port, WakeSource),
    "a port with .listener and consume_wakeups() (a transport Subscriber/Server/Client; use "
    "on_listener() for a raw iceoryx2 Listener)")


@attrs.frozen(eq=False)
class DataTrigger:
    """Run when any of ``ports`` has data; ``kind`` tells data, request or response apart."""

    ports: tuple[Any, ...] = attrs.field(validator=attrs.validators.and_(
        _v.wrap(attrs.validators.min_len(1), "at least one port"),
        attrs.validators.deep_iterable(_wake_source)))
    kind: TriggerKind = TriggerKind.DATA


@attrs.frozen(eq=False)
class IntervalTrigger:
    """Run at ``start + k * period`` (monotonic clock); see :class:`MissedTickPolicy`.

    ``spin`` > 0 blocks until ``spin`` seconds before each tick, then busy-waits to the tick
    (lower jitter, one core busy for ``spin`` per period). ``start`` is a ``time.monotonic()``
    value; ``None`` means one period after the executor attaches the trigger.
    """

    period: float = attrs.field(validator=_v.positive())
    policy: MissedTickPolicy = MissedTickPolicy.SKIP
    spin: float = attrs.field(default=0.0, validator=_v.non_negative())
    start: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.spin >= self.period:
            raise _v.problem(self, "spin", f"{self.spin} s must be shorter than the period "
                             f"({self.period} s); lower spin or lengthen the period")


@attrs.frozen(eq=False)
class DeadlineTrigger:
    """Run on data from ``port`` and whenever ``timeout`` passes without data (a miss).

    After a miss the deadline is re-armed ``timeout`` later, so a silence of 3.5 timeouts
    counts three misses.
    """

    port: Any = attrs.field(validator=_wake_source)
    timeout: float = attrs.field(validator=_v.positive())


@attrs.frozen(eq=False)
class FdTrigger:
    """Run while ``fd`` is readable (level-triggered).

    ``source`` is an int file descriptor or anything with ``fileno()``. If ``consume`` is
    given the executor calls it with the fd before the item runs (in the executor thread);
    otherwise the item must read what is pending or it runs again at once.
    """

    source: Any = attrs.field(validator=_types.predicate(
        lambda src: isinstance(src, int) or callable(getattr(src, "fileno", None)),
        "an int file descriptor or an object with fileno()"))
    consume: Callable[[int], object] | None = None

    def fileno(self) -> int:
        """The file descriptor to watch."""
        return self.source if isinstance(self.source, int) else int(self.source.fileno())


@attrs.frozen(eq=False)
class ListenerTrigger:
    """Run when a raw iceoryx2 Listener has events; the executor consumes them (``try_wait``)."""

    listener: Any = attrs.field(validator=_types.predicate(
        lambda lst: callable(getattr(lst, "try_wait", None)),
        "an iceoryx2 Listener (an object with try_wait()); use on_data() for transport ports"))


Trigger = DataTrigger | IntervalTrigger | DeadlineTrigger | FdTrigger | ListenerTrigger
"""Any trigger declaration."""


def on_data(*ports: Any) -> DataTrigger:
    """Trigger on data from one or several subscribers (any of them wakes the item)."""
    return DataTrigger(tuple(ports))


def on_request(server: Any) -> DataTrigger:
    """Trigger when a transport ``Server`` has a request waiting."""
    return DataTrigger((server,), TriggerKind.REQUEST)


def on_response(client: Any) -> DataTrigger:
    """Trigger when a transport ``Client`` has a response waiting."""
    return DataTrigger((client,), TriggerKind.RESPONSE)


def every(period: float, policy: MissedTickPolicy = MissedTickPolicy.SKIP, *, spin: float = 0.0,
          start: float | None = None) -> IntervalTrigger:
    """Trigger every ``period`` seconds on absolute times (see :class:`IntervalTrigger`)."""
    return IntervalTrigger(period, policy, spin, start)


def deadline(port: Any, timeout: float) -> DeadlineTrigger:
    """Trigger on data from ``port`` and on each ``timeout`` without data."""
    return DeadlineTrigger(port, timeout)


def on_fd(source: Any, consume: Callable[[int], object] | None = None) -> FdTrigger:
    """Trigger while a file descriptor (or an object with ``fileno()``) is readable."""
    return FdTrigger(source, consume)


def on_listener(listener: Any) -> ListenerTrigger:
    """Trigger on a raw iceoryx2 Listener's events."""
    return ListenerTrigger(listener)
