"""A real mosquitto for the MQTT tests: one per test, on a free loopback port, with a generated
config (importable by the tests of this folder; the ``broker`` fixture is in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
START_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process in the foreground (``mosquitto -c FILE``), owned by the test.

    Persistence and log live in ``root``; ``autosave_on_changes`` with an interval of 1 saves
    every change, so a persistent session survives ``kill()`` (SIGKILL) and ``start()`` again
    (``persistence=False``: nothing is saved, as the benchmark wants: a save per QoS 1 message
    would measure the disk).
    Started as root, mosquitto drops to the ``mosquitto`` user unless told ``user root`` (the
    pytest tmp dirs are 0700, so that user could not reach them)."""

    def __init__(self, root: Path, *, extra: str = "", port: int | None = None,
                 persistence: bool = True) -> None:
        assert MOSQUITTO is not None
        self.root = root
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = root / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "set_tcp_nodelay true", "allow_anonymous true",
                 f"log_dest file {root}/mosquitto.log", "log_type error", "log_type warning",
                 "log_type notice", "max_queued_messages 100000"]
        if persistence:
            lines += ["persistence true", f"persistence_location {root}/",
                      "autosave_on_changes true", "autosave_interval 1"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n" + extra)

    def start(self) -> Broker:
        """Start mosquitto and wait (deadline START_S) until it accepts connections."""
        assert MOSQUITTO is not None and (self.proc is None or self.proc.poll() is not None)
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}"
                                   f"{self.log()}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.005)
        self.kill()
        raise RuntimeError(f"mosquitto did not accept connections on {self.port} in {START_S} s")

    def kill(self) -> None:
        """SIGKILL (no clean shutdown, no final save) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(5)
            if self.proc.stderr:
                self.proc.stderr.close()

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "mosquitto.log").read_text()
        return ""

    def tool(self, name: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run ``mosquitto_pub`` / ``mosquitto_sub`` against this broker (MQTT 5)."""
        return subprocess.run([name, "-h", "127.0.0.1", "-p", str(self.port), "-V", "mqttv5",
                               *args], capture_output=True, text=True, timeout=timeout, check=True)


def mchan(name: str, direction: Any, topic: str, *, codec: str = "raw", qos: int = 0,
          retain: bool = False, buffer_size: int = 256, expiry_s: int | None = None,
          with_topic: bool = False) -> Any:
    """A channel descriptor with an ``mqtt`` routing (a reader queue of ``buffer_size``: a
    reconnect delivers a burst)."""
    from taktora.connectors import ChannelDescriptor, Routing

    options: dict[str, Any] = {"qos": qos}
    if retain:
        options["retain"] = True
    if expiry_s is not None:
        options["expiry_s"] = expiry_s
    if with_topic:
        options["with_topic"] = True
    return ChannelDescriptor(name=name, direction=direction, codec=codec, max_payload=1024,
                             buffer_size=buffer_size,
                             routing=Routing("mqtt", topic, options=options))


class PahoPeer:
    """A plain paho client on the broker (the far side of the tests): publishes, and collects
    what arrives on its subscriptions."""

    def __init__(self, port: int, *subscriptions: tuple[str, int], client_id: str = "",
                 clean: bool = True) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.got: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = lambda c, u, m: self.got.put((m.topic, bytes(m.payload)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else 600
        self.client.connect("127.0.0.1", port, clean_start=clean, properties=props)
        self.client.loop_start()
        if subscriptions:
            self.client.subscribe(list(subscriptions))
            assert subscribed.wait(START_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 0, properties: Any = None) -> None:
        self.client.publish(topic, payload, qos, properties=properties).wait_for_publish(START_S)

    def collect(self, n: int, timeout: float = START_S) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.got.get(timeout=min(left, 0.2)))
            except queue.Empty:
                pass
        return out

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def frames(ctx: Any, n: int, timeout: float = START_S) -> list[tuple[Any, bytes]]:
    """Up to ``n`` frames a RecordingContext received within ``timeout``."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and (left := deadline - time.monotonic()) > 0:
        item = ctx.next(min(left, 0.2))
        if item is not None:
            out.append(item)
    return out
