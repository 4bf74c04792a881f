"""An EtherCAT gateway's settings (:class:`EthercatOptions`, a system file's settings table)
and where one channel's value lives in the process image (:class:`BitRoute`)."""

from __future__ import annotations

import attrs
from taktora.actors.executor.thread_attrs import ThreadAttrs
from taktora.connectors.errors import ConnectorError
from taktora.connectors.ethercat.bus import BusConfig
from taktora.connectors.model import ChannelDescriptor
from taktora.transport.validators import Checks

_v = Checks(ConnectorError)
_positive = _v.positive()


@attrs.frozen
class EthercatOptions:
    """Bus, cycle and health settings of one EtherCAT connector."""

    bus: BusConfig
    cycle_s: float = attrs.field(default=0.001, validator=_positive)
    degraded_after: int = attrs.field(default=3, validator=_positive)
    down_after_s: float = attrs.field(default=0.2, validator=_positive)
    reconnect_s: float = attrs.field(default=0.5, validator=_positive)
    cycle_thread: ThreadAttrs | None = attrs.field(
        default=None, validator=_v.optional(_v.instance(ThreadAttrs)))
    """The cycle thread's CPU affinity and SCHED_FIFO priority (a system file's
    ``cycle_thread = { cpus = [1], fifo_priority = 80, best_effort = true }``): with the
    gateway in a process of its own (the multi-process base) the cycle then runs as a hard
    loop there. None: as the process's other threads. Refused without ``best_effort``: the
    connector goes Down naming the missing capability."""
    free_running: bool = attrs.field(default=False, validator=_v.instance(bool))
    """True: the cycle runs back to back, each tick as soon as the last one ended (as fast as
    the bus answers; ``cycle_s`` is not used, no period error or missed tick is recorded).
    The executor item is then triggered by a file descriptor that stays readable, not by a
    timer: sleeping on a timer costs a wake-up per tick (about 40 us on a virtual machine)."""
    bring_up_in_background: bool = attrs.field(default=False, validator=_v.instance(bool))
    """False: ``open`` blocks for the bring-up (at most ``bus.bring_up_timeout_s``) and
    reports Up before it returns. True: ``open`` reports Connecting and returns at once, the
    cycle thread brings the bus up and reports Up (or Down with the reason): a gateway's actor
    keeps answering control messages meanwhile (requests on the bus are refused until Up)."""


@attrs.frozen
class BitRoute:
    """Where one channel's value lives in the process image."""

    subdevice: int
    bit_offset: int
    bit_length: int

    @classmethod
    def of(cls, d: ChannelDescriptor) -> BitRoute:
        r = d.routing
        if r.kind != "ethercat":
            raise ConnectorError(f"channel {d.name!r}: routing kind {r.kind!r}, the EtherCAT connector "
                                 "needs 'ethercat'")
        values = []
        for key in ("subdevice", "bit_offset", "bit_length"):
            v = r.option(key, None)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConnectorError(f"channel {d.name!r}: routing option {key}={v!r} must be an "
                                     "integer >= 0")
            values.append(v)
        route = cls(*values)
        if route.bit_length == 0 or route.bit_length > 8 * d.max_payload:
            raise ConnectorError(f"channel {d.name!r}: bit_length={route.bit_length} must be 1.."
                                 f"{8 * d.max_payload} (max_payload)")
        return route

    @property
    def nbytes(self) -> int:
        return (self.bit_length + 7) // 8
