"""``WatchingSupervisor``: a supervisor that tells subscribers its children's health.

For children without a health state of their own (item hosts): each child gets a
:class:`~taktora.actors.models.health.HealthMachine` here, so the application sees a child's
life as it sees a gateway's: ``Connecting`` when it is (re)started, ``Up`` once it reported
started, ``Down`` (``exited: <why>``: a crash, ``kill -9`` of its process, an executor that
ended) the moment it dies, before the restart. Every transition is one :class:`HealthEvent`
(source = the child id) sent to each address in the spec's ``subscribers``.

Start one with a :class:`WatchedSpec` (a :class:`SupervisorSpec` with ``subscribers``). Runs on
the supervisor's actor thread; never blocks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from taktora.actors.control.supervision import SupervisorSpec
from taktora.actors.control.supervisor import Supervisor
from taktora.actors.models.health import HealthEvent, HealthMachine, HealthState

C, U, D = HealthState.CONNECTING, HealthState.UP, HealthState.DOWN


class WatchingSupervisor(Supervisor):
    """A supervisor keeping one health machine per child (see the module docstring)."""

    def _machine(self, child_id: str) -> HealthMachine:
        machines: dict[str, HealthMachine] = self.__dict__.setdefault("machines", {})
        machine = machines.get(child_id)
        if machine is None:
            machine = machines[child_id] = HealthMachine(child_id)
            machine.subscribe(self._fan_out)
            self._fan_out(machine.last_event)  # the first Connecting
        return machine

    def _fan_out(self, event: HealthEvent) -> None:
        for subscriber in getattr(self.spec, "subscribers", ()):
            self.send(subscriber, event)

    def child_args(self, child_id: str, args: dict[str, Any]) -> dict[str, Any]:
        machine = self._machine(child_id)
        if machine.state is D:
            machine.transition(C, "restarting")
        return args

    def on_child_up(self, child_id: str) -> None:
        machine = self._machine(child_id)
        if machine.state is not U:
            if machine.state is D:
                machine.transition(C, "restarting")
            machine.transition(U, "running")

    def on_child_down(self, child_id: str, reason: str, *, abnormal: bool) -> None:
        machine = self._machine(child_id)
        if machine.state is not D:
            machine.transition(D, f"exited: {reason}")


@attrs.frozen(kw_only=True)
class WatchedSpec(SupervisorSpec):
    """A :class:`SupervisorSpec` started as a :class:`WatchingSupervisor`; ``subscribers``:
    actor addresses that get every child's HealthEvents (picklable addresses)."""

    subscribers: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    supervisor_class: ClassVar[type] = WatchingSupervisor
