"""Error-frame classification after the SocketCAN layout (``linux/can/error.h``).

An error frame carries *class bits* in its identifier and details in its 8 data bytes.
python-can's convention (followed by its SocketCAN back-end on receive) is that
``Message.arbitration_id`` holds the class bits only, without ``CAN_ERR_FLAG``; the flag is
masked off here anyway.

=========================  ======  ============================  ==========================
class (``arbitration_id``)  bit    detail                        health effect
=========================  ======  ============================  ==========================
``tx_timeout``             0x001   -                             counted
``lost_arbitration``       0x002   data[0]: bit position         counted
``controller``             0x004   data[1]: see below            see below
``protocol``               0x008   data[2]: type, data[3]: where counted (by type)
``transceiver``            0x010   data[4]: wiring status        counted
``no_ack``                 0x020   -                             counted
``bus_off``                0x040   -                             Down, bus closed, reconnect
``bus_error``              0x080   -                             counted
``restarted``              0x100   -                             counted
``counters``               0x200   data[6]: TX, data[7]: RX      >= 128 passive, >= 96 warning
=========================  ======  ============================  ==========================

Controller status (data[1]): ``rx_warning`` 0x04 / ``tx_warning`` 0x08 -> error-warning
(Degraded); ``rx_passive`` 0x10 / ``tx_passive`` 0x20 -> error-passive (Degraded);
``active`` 0x40 -> back to error-active (Degraded -> Up at once); ``rx_overflow`` 0x01 /
``tx_overflow`` 0x02 -> counted as drops. Any error frame restarts the recovery window of a
Degraded interface.

Pure functions, no state: any thread may call them.
"""

from __future__ import annotations

import enum

import attrs

CAN_ERR_FLAG = 0x20000000
CAN_ERR_MASK = 0x1FFFFFFF
CAN_ERR_DLC = 8

CLASS_BITS: tuple[tuple[int, str], ...] = (
    (0x001, "tx_timeout"),
    (0x002, "lost_arbitration"),
    (0x004, "controller"),
    (0x008, "protocol"),
    (0x010, "transceiver"),
    (0x020, "no_ack"),
    (0x040, "bus_off"),
    (0x080, "bus_error"),
    (0x100, "restarted"),
    (0x200, "counters"),
)
CAN_ERR_CRTL = 0x004
CAN_ERR_PROT = 0x008
CAN_ERR_BUSOFF = 0x040
CAN_ERR_CNT = 0x200

CONTROLLER_BITS: tuple[tuple[int, str], ...] = (
    (0x01, "rx_overflow"),
    (0x02, "tx_overflow"),
    (0x04, "rx_warning"),
    (0x08, "tx_warning"),
    (0x10, "rx_passive"),
    (0x20, "tx_passive"),
    (0x40, "active"),
)
PROTOCOL_BITS: tuple[tuple[int, str], ...] = (
    (0x01, "bit"),
    (0x02, "form"),
    (0x04, "stuff"),
    (0x08, "bit0"),
    (0x10, "bit1"),
    (0x20, "overload"),
    (0x40, "active_error"),
    (0x80, "tx"),
)
WARNING_THRESHOLD = 96
PASSIVE_THRESHOLD = 128


class BusState(enum.Enum):
    """What an error frame says about the controller's fault-confinement state."""

    ACTIVE = "error-active"
    WARNING = "error-warning"
    PASSIVE = "error-passive"
    BUS_OFF = "bus-off"


@attrs.frozen
class ErrorFrame:
    """One classified error frame.

    ``classes``: the class names present (see the module table). ``details``: the detail
    names of the controller (``controller.rx_passive``) and protocol (``protocol.form``)
    classes. ``state``: the fault-confinement state it announces, or None if it announces none.
    ``tx_errors`` / ``rx_errors``: the error counters when the ``counters`` class is present.
    """

    classes: tuple[str, ...]
    details: tuple[str, ...]
    state: BusState | None
    tx_errors: int | None = None
    rx_errors: int | None = None

    def describe(self) -> str:
        """A short text for logs and health-event reasons."""
        parts = list(self.classes) + list(self.details)
        if self.tx_errors is not None:
            parts.append(f"tec={self.tx_errors} rec={self.rx_errors}")
        head = self.state.value if self.state is not None else "error frame"
        return f"{head} ({', '.join(parts) or 'no class bits'})"


def _names(value: int, table: tuple[tuple[int, str], ...]) -> list[str]:
    return [name for bit, name in table if value & bit]


def classify(arbitration_id: int, data: bytes | bytearray | memoryview) -> ErrorFrame:
    """Classify an error frame from its identifier (class bits) and data bytes.

    Missing data bytes count as 0 (a short frame from a sloppy driver is still classified).
    """
    bits = arbitration_id & CAN_ERR_MASK
    raw = bytes(data[:CAN_ERR_DLC]).ljust(CAN_ERR_DLC, b"\0")
    classes = _names(bits, CLASS_BITS)
    details: list[str] = []
    state: BusState | None = None
    tx = rx = None
    if bits & CAN_ERR_CRTL:
        ctrl = _names(raw[1], CONTROLLER_BITS)
        details += [f"controller.{n}" for n in ctrl]
        if "rx_passive" in ctrl or "tx_passive" in ctrl:
            state = BusState.PASSIVE
        elif "rx_warning" in ctrl or "tx_warning" in ctrl:
            state = BusState.WARNING
        elif "active" in ctrl:
            state = BusState.ACTIVE
    if bits & CAN_ERR_PROT:
        details += [f"protocol.{n}" for n in _names(raw[2], PROTOCOL_BITS) or ["unspecified"]]
    if bits & CAN_ERR_CNT:
        tx, rx = raw[6], raw[7]
        worst = max(tx, rx)
        by_count = (BusState.PASSIVE if worst >= PASSIVE_THRESHOLD
                    else BusState.WARNING if worst >= WARNING_THRESHOLD else None)
        if by_count is not None and (state is None or state is BusState.ACTIVE
                                     or (state is BusState.WARNING
                                         and by_count is BusState.PASSIVE)):
            state = by_count
    if bits & CAN_ERR_BUSOFF:
        state = BusState.BUS_OFF
    return ErrorFrame(tuple(classes), tuple(details), state, tx, rx)


def error_frame_data(*, controller: int = 0, protocol: int = 0, location: int = 0,
                     transceiver: int = 0, tx_errors: int = 0, rx_errors: int = 0,
                     lost_bit: int = 0) -> bytes:
    """The 8 data bytes of an error frame in the SocketCAN layout (for injecting errors)."""
    return bytes((lost_bit, controller, protocol, location, transceiver, 0, tx_errors, rx_errors))
