"""The process image of the EtherCAT cycle: outputs taken from the channels, inputs published.

:class:`Outputs` drains every OUTBOUND channel once per cycle (``ctx.drain``, the framework's
checks and counters on the cycle thread) straight into a shadow of each SubDevice's output
image, read-modify-write (the neighbouring bits stay): the latest value of a cycle wins, an
earlier one it replaces is counted ``overwritten``, one taken while the safe outputs are on is
counted ``discarded_safe``. Only a SubDevice whose shadow changed is written to SOEM's image.

:class:`Inputs` compares each SubDevice's input image with the one of the last published
cycle and, for a changed image only, slices out each inbound channel and hands a changed
slice to ``ctx.deliver`` (published into iceoryx2 right there).

Both are owned by the cycle thread (pysoem is not thread-safe); only :meth:`Outputs.set_safe`
and :meth:`Inputs.refresh` may be called from other threads (flags read once per cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taktora.connectors.context import ConnectorContext, Frame
from taktora.connectors.errors import LinkDownError
from taktora.connectors.ethercat.bits import copy_bits
from taktora.connectors.ethercat.settings import BitRoute
from taktora.connectors.model import ChannelDescriptor


class _Out:
    """One OUTBOUND channel: where its bits go, and the drain handler that puts them there."""

    __slots__ = ("aligned", "image", "name", "nbytes", "outputs", "route", "sub", "taken_in")

    def __init__(self, outputs: Outputs, descriptor: ChannelDescriptor, route: BitRoute) -> None:
        self.outputs = outputs
        self.name = descriptor.name
        self.route = route
        self.sub = route.subdevice
        self.nbytes = route.nbytes
        self.aligned: slice | None = None  # whole bytes: a slice assignment, no bit arithmetic
        if not (route.bit_offset | route.bit_length) & 7:
            self.aligned = slice(route.bit_offset >> 3, (route.bit_offset >> 3) + self.nbytes)
        self.image = bytearray()  # the shadow of the SubDevice's outputs (set by attach)
        self.taken_in = -1  # the cycle that last took a value for this channel

    def take(self, descriptor: ChannelDescriptor, frame: Frame) -> None:
        """The drain handler (cycle thread): write ``frame`` into the shadow (valid only during
        this call: copied here). Short frames are zero-padded, long ones cut to the routing."""
        outputs = self.outputs
        counters = outputs.counters
        counters["sent"] += 1
        if outputs.safe:
            counters["discarded_safe"] += 1
            return
        if self.taken_in == outputs.cycle:
            counters["overwritten"] += 1  # an earlier value of this cycle never reached the bus
        self.taken_in = outputs.cycle
        if len(frame) < self.nbytes:
            frame = bytes(frame).ljust(self.nbytes, b"\x00")
        if self.aligned is not None:
            self.image[self.aligned] = frame[:self.nbytes]
        else:
            copy_bits(frame, 0, self.image, self.route.bit_offset, self.route.bit_length)
        outputs.touched[self.sub] = True


class Outputs:
    """The output side of the process image (see the module docstring)."""

    def __init__(self, routes: Sequence[tuple[ChannelDescriptor, BitRoute]],
                 counters: dict[str, int]) -> None:
        self.counters = counters
        self.safe = False
        """While True the outputs keep the safe value (zeros) and taken values are discarded
        (set with :meth:`set_safe`)."""
        self.cycle = 0
        self.touched: list[bool] = []
        self._channels = [_Out(self, d, r) for d, r in routes]
        self._drains = [(c.name, c.take) for c in self._channels]
        self._shadows: list[bytearray] = []
        self._subdevices: list[Any] = []
        self._zero = False  # the next cycle writes the safe value first (set_safe(True))

    def set_safe(self, safe: bool) -> None:
        """Safe outputs on or off (any thread). Turning them on makes the next cycle write the
        safe value even when they are turned off again before it runs: a Pause always reaches
        the bus, and values written after it start from the safe value."""
        if safe:
            self.safe = True
            self._zero = True
        else:
            self.safe = False

    def attach(self, subdevices: Sequence[Any]) -> None:
        """A bus came up (cycle or owner's thread): shadows of its output images, all zero
        (SOEM's image starts from safe outputs after a bring-up)."""
        self._subdevices = list(subdevices)
        self._shadows = [bytearray(len(sd.output)) for sd in self._subdevices]
        self.touched = [False] * len(self._shadows)
        for c in self._channels:
            c.image = self._shadows[c.sub]
            c.taken_in = -1

    def take(self, ctx: ConnectorContext) -> None:
        """Drain every outbound channel into the shadows and write the changed ones to SOEM's
        image (cycle thread; never blocks)."""
        self.cycle += 1
        if self._zero:
            self._zero = False
            self.write_safe()
        for name, handler in self._drains:
            ctx.drain(name, handler)
        touched = self.touched
        if True in touched:
            subs, shadows = self._subdevices, self._shadows
            for s, hit in enumerate(touched):
                if hit:
                    touched[s] = False
                    subs[s].output = bytes(shadows[s])

    def refuse(self, ctx: ConnectorContext, reason: str) -> None:
        """Drain every outbound channel and refuse each frame (cycle thread, while the bus is
        Down): the framework counts it ``link_down``; no stale value waits for the next
        bring-up."""

        def down(descriptor: ChannelDescriptor, frame: Frame) -> None:
            raise LinkDownError(reason)

        for name, _ in self._drains:
            ctx.drain(name, down)

    def write_safe(self) -> None:
        """Put every SubDevice's outputs to the safe value (zeros) now (cycle thread, or the
        owner's thread in ``close`` once the cycle stopped)."""
        for sd, shadow in zip(self._subdevices, self._shadows, strict=True):
            shadow[:] = bytes(len(shadow))
            sd.output = bytes(shadow)
        touched = self.touched
        for s in range(len(touched)):
            touched[s] = False


class _In:
    """One INBOUND channel: its slice of the input image and the last value delivered."""

    __slots__ = ("aligned", "last", "name", "nbytes", "route")

    def __init__(self, descriptor: ChannelDescriptor, route: BitRoute) -> None:
        self.name = descriptor.name
        self.route = route
        self.nbytes = route.nbytes
        self.aligned: slice | None = None
        if not (route.bit_offset | route.bit_length) & 7:
            self.aligned = slice(route.bit_offset >> 3, (route.bit_offset >> 3) + self.nbytes)
        self.last: bytes | None = None


class Inputs:
    """The input side of the process image (see the module docstring)."""

    def __init__(self, routes: Sequence[tuple[ChannelDescriptor, BitRoute]],
                 counters: dict[str, int]) -> None:
        self.counters = counters
        by_sub: dict[int, list[_In]] = {}
        for d, r in routes:
            by_sub.setdefault(r.subdevice, []).append(_In(d, r))
        self._by_sub = list(by_sub.items())
        self._watch: list[tuple[Any, list[_In]]] = []
        self._last: list[bytes | None] = []
        self._refresh = False

    def attach(self, subdevices: Sequence[Any]) -> None:
        """A bus came up: forget what was delivered (every input is delivered once again)."""
        self._watch = [(subdevices[s], channels) for s, channels in self._by_sub]
        self._last = [None] * len(self._watch)
        for _, channels in self._watch:
            for c in channels:
                c.last = None

    def refresh(self) -> None:
        """Deliver every input again on the next published cycle, changed or not (any thread:
        Resume)."""
        self._refresh = True

    def publish(self, ctx: ConnectorContext) -> None:
        """Deliver every input slice that changed since it was last delivered (cycle thread).
        A SubDevice whose whole input image is unchanged is skipped without slicing."""
        if self._refresh:
            self._refresh = False
            self._last = [None] * len(self._watch)
            for _, channels in self._watch:
                for c in channels:
                    c.last = None
        last = self._last
        deliver = ctx.deliver
        for i, (sd, channels) in enumerate(self._watch):
            img = sd.input
            if img == last[i]:
                continue
            last[i] = img
            for c in channels:
                if c.aligned is not None:
                    value = img[c.aligned]
                else:
                    buf = bytearray(c.nbytes)
                    copy_bits(img, c.route.bit_offset, buf, 0, c.route.bit_length)
                    value = bytes(buf)
                if value == c.last:
                    continue
                c.last = value
                self.counters["received"] += 1
                deliver(c.name, value)  # a value the sink cannot publish is counted there
