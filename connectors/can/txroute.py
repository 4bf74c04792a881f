"""One OUTBOUND channel's send route, built once per open (ARCH_0701).

A :class:`TxRoute` holds what :meth:`CanConnector.send
<taktora.connectors.can.connector.CanConnector.send>` needs per frame, resolved in advance: the
interface, the data lengths the frame format allows, the send timeout, and
:attr:`TxRoute.message`, which builds the ``can.Message`` of one frame from its data alone
(identifier, extended, FD, BRS and ESI bound from the routing). Building a message with
python-can's keyword arguments costs about twice as much as with positional ones, so the
factory passes them by position when ``can.Message.__init__`` has the parameter order this
module was written against (python-can 4.x, checked once at import: :data:`POSITIONAL`), and
by keyword otherwise. Either way the message is the one the keyword call would build: data
copied once into it (``bytearray(data)``; a bytearray is taken as it is), ``dlc`` its length,
``check=False``.

Pure data built on the opener's thread; read-only afterwards (any thread).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import can
from taktora.connectors.can.config import CLASSIC_MAX_DATA, FD_LENGTHS, CanRouting
from taktora.connectors.can.interface import Interface

MessageFactory = Callable[[Any], can.Message]
"""Builds the ``can.Message`` of one frame from its data (bytes-like)."""

_ORDER = ("timestamp", "arbitration_id", "is_extended_id", "is_remote_frame", "is_error_frame",
          "channel", "dlc", "data", "is_fd", "is_rx", "bitrate_switch", "error_state_indicator")


def _positional_ok() -> bool:
    try:
        params = list(inspect.signature(can.Message.__init__).parameters)
    except (TypeError, ValueError):
        return False
    return tuple(params[1:1 + len(_ORDER)]) == _ORDER


POSITIONAL = _positional_ok()
"""Whether ``can.Message`` takes its fields in python-can 4.x's positional order."""

CLASSIC_LENGTHS = frozenset(range(CLASSIC_MAX_DATA + 1))


def message_factory(routing: CanRouting, positional: bool = POSITIONAL) -> MessageFactory:
    """The message factory of ``routing`` (see the module docstring)."""
    can_id, extended, fd, brs, esi = (routing.can_id, routing.extended, routing.fd,
                                      routing.brs, routing.esi)
    message = can.Message
    if not positional:
        def by_keyword(data: Any) -> can.Message:
            return message(arbitration_id=can_id, is_extended_id=extended, data=data, is_fd=fd,
                           bitrate_switch=brs, error_state_indicator=esi, check=False)
        return by_keyword
    if not fd:  # the common case: no Python frame of ours, the rest are python-can's defaults
        return functools.partial(message, 0.0, can_id, extended, False, False, None, None)

    def fd_message(data: Any) -> can.Message:
        return message(0.0, can_id, extended, False, False, None, None, data, True, True, brs,
                       esi)
    return fd_message


class TxRoute:
    """The send route of one OUTBOUND channel: ``iface``, ``lengths`` (data lengths its frame
    format carries: 0-8 classic; 0-8, 12, 16, 20, 24, 32, 48, 64 FD), ``fd``, ``timeout`` (the
    interface's ``send_timeout_s``) and ``message`` (see :func:`message_factory`)."""

    __slots__ = ("fd", "iface", "lengths", "message", "routing", "timeout")

    def __init__(self, iface: Interface, routing: CanRouting) -> None:
        self.iface = iface
        self.routing = routing
        self.fd = routing.fd
        self.lengths = FD_LENGTHS if routing.fd else CLASSIC_LENGTHS
        self.timeout = iface.cfg.send_timeout_s
        self.message = message_factory(routing)

    def __repr__(self) -> str:
        return f"<TxRoute {self.iface.cfg.name!r} id={self.routing.can_id:#x} fd={self.fd}>"
