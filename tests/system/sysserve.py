"""Run a small multi-process taktora system until stdin closes (used by the CLI tests).

Usage: python sysserve.py ADMIN_PORT. Prints "ready" once the tree is up.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from taktora.actors.control.base import TaktoraActor, handles
from taktora.actors.control.messages import Ack, GetStats, Pause, Resume, StatsReply
from taktora.actors.control.supervision import ChildSpec, SupervisorSpec


class Gateway(TaktoraActor):
    """Answers Pause/Resume with Ack and GetStats with its pid and pause state."""

    def on_start(self) -> None:
        self.paused = False

    @handles(Pause, Resume)
    def _pr(self, msg: Any, sender: Any) -> Ack:
        self.paused = isinstance(msg, Pause)
        return self.ack(msg, "paused" if self.paused else "resumed")

    @handles(GetStats)
    def _stats(self, msg: GetStats, sender: Any) -> StatsReply:
        return StatsReply(correlation_id=msg.correlation_id, source=self.name,
                          stats={"pid": os.getpid(), "paused": self.paused})


def main() -> None:
    import sysserve
    from taktora.system.bootstrap import QUIET_LOGGING, start_system

    port = int(sys.argv[1])
    spec = ChildSpec(id="line1", start=SupervisorSpec(strategy="rest_for_one", children=[
        ChildSpec(id="gw", start=sysserve.Gateway),
        ChildSpec(id="hm", start="taktora.actors.control.health_monitor:HealthMonitor",
                  args={"sources": ["gw"]})]))
    with start_system("multiprocess", admin_port=port, logging_config=QUIET_LOGGING) as h:
        h.start_child(spec)
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
