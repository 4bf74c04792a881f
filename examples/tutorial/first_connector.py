"""Tutorial step 2: try the echo connector without a gateway.

``RecordingContext`` stands in for the gateway: it records what the connector delivers and
every health report, so a connector can be tried (and unit-tested) with no actor system and
no shared memory. This script opens the connector on one pair of channels, sends three
frames and reads them back; it fills a slow connector's queue to see its health reports;
and it shows what a bad setting and a bad channel are told.

Run it:  python examples/tutorial/first_connector.py
"""

from __future__ import annotations

from echo_connector import EchoConnector, EchoSettings
from taktora.connectors import ChannelDescriptor, ConnectorError, Direction, Routing
from taktora.connectors.testing import RecordingContext

PING = Routing("echo", "ping")  # the same address on both: requests come back as replies
REQUEST = ChannelDescriptor("echo/request", Direction.OUTBOUND, routing=PING)
REPLY = ChannelDescriptor("echo/reply", Direction.INBOUND, routing=PING)


def main() -> None:
    connector = EchoConnector.from_settings("try", EchoSettings(delay_s=0.01))
    ctx = RecordingContext([REQUEST, REPLY])
    ctx.open(connector)  # what the gateway does: bind, then open
    print(f"health: {connector.health().value} ({ctx.reports[-1][1]})")
    try:
        for text in ("one", "two", "three"):
            connector.send(REQUEST, text.encode())  # the gateway's outbound thread does this
            got = ctx.next(timeout=1.0)  # what the connector's thread delivered
            assert got is not None, f"{text!r} did not come back"
            channel, frame = got
            print(f"sent {text!r} on {REQUEST.name}, back on {channel}: {bytes(frame)!r}")
        print(f"stats: {dict(connector.stats())}")
    finally:
        connector.close()

    slow = EchoConnector.from_settings("slow", EchoSettings(delay_s=0.2, max_pending=2))
    slow_ctx = RecordingContext([REQUEST, REPLY])
    slow_ctx.open(slow)
    try:
        accepted = 0
        for n in range(5):  # faster than it echoes: the queue fills up
            try:
                slow.send(REQUEST, f"frame {n}".encode())
                accepted += 1
            except ConnectorError:  # the gateway counts a refused frame and goes on
                pass
        for _ in range(accepted):  # wait until every accepted frame came back
            assert slow_ctx.next(timeout=2.0) is not None, "an accepted frame did not come back"
    finally:
        slow.close()
    print(f"slow: {accepted} of 5 frames accepted, health reports: "
          + ", ".join(f"{state.value} ({reason})" for state, reason in slow_ctx.reports))

    try:  # settings are validated when they are built (a system file: when it loads)
        EchoSettings(delay_s=5.0)
    except ValueError as exc:
        print(f"bad setting: {exc}")
    try:  # channels are checked before anything starts
        EchoConnector.check_channel(EchoSettings(), ChannelDescriptor(
            "echo/request", Direction.OUTBOUND, routing=Routing("udp", "127.0.0.1:9")))
    except ConnectorError as exc:
        print(f"bad channel: {exc}")


if __name__ == "__main__":
    main()
