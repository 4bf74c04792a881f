"""One host of the multi-host test, run inside a network namespace with ``ip netns exec``.

``leader IP PORT``: start a multiprocess actor system bound to IP as convention leader, wait
until a member system joins, create a HostProbe that only a member may run, print what it
reports, shut down. ``member IP PORT LEADER_IP``: join the leader's convention and serve
until stdin closes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from taktora.system.bootstrap import start_system
from thespian.actors import ActorExitRequest, ActorTypeDispatcher, NoCompatibleSystemForActor

QUIET = {"version": 1, "root": {"level": "CRITICAL", "handlers": []}}


class HostProbe(ActorTypeDispatcher):  # type: ignore[misc]
    """Answers with the network interfaces of the namespace it runs in."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: dict[str, Any]) -> bool:
        return bool(capabilities.get("taktora.host") == requirements.get("taktora.host"))

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
        self.send(sender, sorted(line.split(":")[0].strip() for line in lines))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        pass


def leader(ip: str, port: int) -> int:
    # the leader names itself as the convention address; members name the leader
    with start_system("multiprocess", admin_port=port, allow_remote=True, bind_address=ip,
                      convention_leader=f"{ip}:{port}", capabilities={"taktora.host": "A"},
                      logging_config=QUIET) as h:
        print("READY", flush=True)
        # the member imports the probe by module name: never hand it a __main__ class
        from multihost_node import HostProbe as probe_class

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                probe = h.raw.createActor(probe_class, targetActorRequirements={"taktora.host": "B"})
            except NoCompatibleSystemForActor:
                time.sleep(0.5)  # the member has not joined the convention yet
                continue
            answer = h.raw.ask(probe, "where", 2.0)
            h.raw.tell(probe, ActorExitRequest())
            if isinstance(answer, list):
                print("PROBE " + ",".join(answer), flush=True)
                return 0
            time.sleep(0.5)  # the member has not joined yet
        print("PROBE none", flush=True)
        return 1


def member(ip: str, port: int, leader_ip: str) -> int:
    with start_system("multiprocess", admin_port=port, allow_remote=True, bind_address=ip,
                      convention_leader=f"{leader_ip}:{port}", capabilities={"taktora.host": "B"},
                      logging_config=QUIET):
        print("READY", flush=True)
        sys.stdin.read()  # serve until the test closes our stdin
    return 0


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "leader":
        sys.exit(leader(sys.argv[2], int(sys.argv[3])))
    sys.exit(member(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
