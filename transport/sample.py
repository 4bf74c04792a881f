"""Received samples and their zero-copy, read-only, lifetime-checked views.

iceoryx2's Python binding hands out views of shared memory that can outlive the sample and
that claim to be writable although the mapping is read-only (writing segfaults). This module
closes both holes:

- :attr:`Sample.payload` is a *read-only* memoryview straight onto shared memory (no copy).
  The memory behind it stays valid as long as any view of it exists: the view keeps the
  iceoryx2 sample alive, so it can never dangle.
- :meth:`Sample.release` (or leaving the ``with`` block) releases the view; using it afterwards
  raises ``ValueError`` (CPython's "released memoryview"), and the sample's own accessors raise
  :class:`SampleReleasedError`. Slices a caller took of the view keep the memory alive until
  they are dropped; that delays the sample's return to the publisher but never crashes.
- :attr:`Sample.value` (struct payloads) is a read-only proxy of the ctypes Structure: reads
  go straight to shared memory, writes raise :class:`PayloadError`, access after release
  raises :class:`SampleReleasedError`.
"""

from __future__ import annotations

import ctypes
from typing import Any

from taktora.transport.errors import PayloadError, SampleReleasedError


class _Cell:
    """Shared liveness flag between a sample and the proxies made from it."""

    __slots__ = ("alive",)

    def __init__(self) -> None:
        self.alive = True


def readonly_view(address: int, size: int, owner: Any) -> memoryview:
    """A read-only byte view of ``size`` bytes at ``address`` that keeps ``owner`` alive."""
    arr = (ctypes.c_uint8 * size).from_address(address)
    arr._taktora_owner = owner  # type: ignore[attr-defined]  # ctypes objects take attributes
    return memoryview(arr).cast("B").toreadonly()


class FrozenStruct:
    """Read-only proxy of a ctypes Structure (or array) living in received shared memory."""

    __slots__ = ("_cell", "_obj")

    def __init__(self, obj: Any, cell: _Cell) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_cell", cell)

    def _target(self) -> Any:
        if not self._cell.alive:
            raise SampleReleasedError(
                "the sample behind this value was released: read fields inside the "
                "`with sample:` block, or take a copy with Subscriber.receive_copy()"
            )
        return self._obj

    def __getattr__(self, name: str) -> Any:
        return _wrap(getattr(self._target(), name), self._cell)

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._target()[index], self._cell)

    def __len__(self) -> int:
        return len(self._target())

    def __iter__(self) -> Any:
        target = self._target()
        return iter([_wrap(target[i], self._cell) for i in range(len(target))])

    def __setattr__(self, name: str, value: Any) -> None:
        raise PayloadError(f"received sample is read-only (tried to set {name!r})")

    def __setitem__(self, index: Any, value: Any) -> None:
        raise PayloadError("received sample is read-only (tried to set an element)")

    def __bytes__(self) -> bytes:
        return bytes(memoryview(self._target()).cast("B"))

    def copy(self) -> Any:
        """A private, writable copy of the value (a plain ctypes object)."""
        target = self._target()
        return type(target).from_buffer_copy(target)

    def __repr__(self) -> str:
        if not self._cell.alive:
            return "<FrozenStruct (released)>"
        return f"<FrozenStruct {type(self._obj).__name__}>"


def _wrap(value: Any, cell: _Cell) -> Any:
    if isinstance(value, ctypes.Structure | ctypes.Union | ctypes.Array):
        return FrozenStruct(value, cell)
    return value


class Sample:
    """One received sample; a context manager that releases it on exit.

    Runs on the thread that called ``receive``; not thread-safe (hand copies to other
    threads). Releasing twice is harmless.
    """

    __slots__ = ("_cell", "_iox", "_size", "_struct", "_view", "publisher", "sequence",
                 "timestamp_ns")

    def __init__(self, iox_sample: Any, size: int, struct: type[ctypes.Structure] | None,
                 sequence: int, timestamp_ns: int, publisher: int) -> None:
        self._iox = iox_sample
        self._size = size
        self._struct = struct
        self._view: memoryview | None = None
        self._cell: _Cell | None = None
        self.sequence = sequence
        self.timestamp_ns = timestamp_ns
        self.publisher = publisher

    @property
    def released(self) -> bool:
        return self._iox is None

    def _live(self) -> Any:
        if self._iox is None:
            raise SampleReleasedError(
                "sample already released: use it inside its `with` block, or copy it first"
            )
        return self._iox

    @property
    def size(self) -> int:
        """Payload length in bytes."""
        return self._length(self._live())

    def _length(self, iox_sample: Any) -> int:
        """The payload length; a bytes sample reads it from iceoryx2 on first use (``size``
        -1 at construction: a receive that never looks at the payload does not pay for it)."""
        if self._size < 0:
            self._size = int(iox_sample.header.number_of_elements)
        return self._size

    @property
    def payload(self) -> memoryview:
        """Zero-copy, read-only bytes of the payload; valid until the sample is released."""
        iox_sample = self._live()
        if self._view is None:
            self._view = readonly_view(iox_sample.payload_ptr, self._length(iox_sample),
                                       iox_sample)
        return self._view

    @property
    def value(self) -> FrozenStruct:
        """The struct payload as a read-only proxy (struct channels only)."""
        iox_sample = self._live()
        if self._struct is None:
            raise PayloadError("value is for struct channels; use .payload for bytes channels")
        if self._cell is None:
            self._cell = _Cell()
        obj = self._struct.from_address(iox_sample.payload_ptr)
        obj._taktora_owner = iox_sample
        return FrozenStruct(obj, self._cell)

    def copy(self) -> Any:
        """A private copy: ``bytes`` for bytes channels, a ctypes instance for struct ones."""
        iox_sample = self._live()
        if self._struct is not None:
            return self._struct.from_buffer_copy(
                (ctypes.c_uint8 * self._length(iox_sample)).from_address(iox_sample.payload_ptr)
            )
        return ctypes.string_at(iox_sample.payload_ptr, self._length(iox_sample))

    def release(self) -> None:
        """Give the sample back to iceoryx2; views made from it stop working."""
        if self._iox is None:
            return
        if self._view is not None:
            # a caller may have exported it further: the memory then lives until that export goes
            # (try/except rather than contextlib.suppress: this runs once per received sample)
            try:  # noqa: SIM105
                self._view.release()
            except BufferError:
                pass
            self._view = None
        if self._cell is not None:
            self._cell.alive = False
        self._iox = None  # the last reference: iceoryx2 frees it unless a caller's slice holds it

    def __enter__(self) -> Sample:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._iox is None else f"{self._length(self._iox)} B"
        return f"<Sample seq={self.sequence} {state}>"
