"""Tutorial step 3: an application using the echo gateway.

The app never sees the connector: it writes requests on the outbound channel "echo/request"
and reads replies from the inbound channel "echo/reply", two iceoryx2 channels that the
gateway serves. It is an executor with two items, as in step 1: ``ask`` every 0.2 s and
``hear`` when a reply arrives. Requests written before the gateway is up reach nobody (the
writer counts them); the app stops after five replies, or gives up after 20 s.

Run it (while echo.toml runs):  python examples/tutorial/echo_app.py
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from taktora.actors.executor import Context, Executor, every, item, on_data
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter
from taktora.system import SystemConfig, load
from taktora.transport import Node

SYSTEM = Path(__file__).with_name("echo.toml")
REPLIES = 5

Message = dict[str, int]


def channel(config: SystemConfig, name: str) -> ChannelDescriptor:
    """The descriptor of channel ``name`` in the system file: the app opens the same one."""
    return next(c for g in config.gateways for c in g.channels if c.name == name)


def main() -> int:
    config = load(SYSTEM)  # also checks the file, as taktora run does
    replies: list[Message] = []
    with Node("echo-app") as node, Executor("echo-app") as executor:
        requests: ChannelWriter[Message] = ChannelWriter(node, channel(config, "echo/request"))
        answers: ChannelReader[Message] = ChannelReader(node, channel(config, "echo/reply"))
        counter = itertools.count(1)

        def ask(ctx: Context) -> None:
            requests.send({"n": next(counter), "sent_ns": time.monotonic_ns()})

        def hear(ctx: Context) -> None:
            for got in answers.drain():
                ms = (time.monotonic_ns() - got.value["sent_ns"]) / 1e6
                print(f"reply to request {got.value['n']} after {ms:.1f} ms")
                replies.append(got.value)
                if len(replies) == REPLIES:
                    ctx.stop()

        executor.add(item(ask, [every(0.2)]))
        executor.add(item(hear, [on_data(answers)]))
        executor.run_for(20.0)
        sent = requests.stats()
        print(f"{len(replies)} replies; {sent.sent} requests sent, "
              f"{sent.no_subscriber} of them before the gateway was up")
    return 0 if len(replies) >= REPLIES else 1


if __name__ == "__main__":
    sys.exit(main())
