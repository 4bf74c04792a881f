"""MQTT telemetry of the control demo (:mod:`taktora.system.demo.control`), when mosquitto is
installed: a broker this module starts, a gateway ``mqtt`` that publishes channel ``tel/mqtt``
to it, the demo process's writer of that channel and a plain paho subscriber counting what the
broker delivers.

- :class:`DemoBroker`: ``mosquitto -c FILE`` in the foreground on a free loopback port, with a
  generated config (``listener PORT 127.0.0.1``, ``set_tcp_nodelay true``, no persistence) in
  a temporary directory; started as root, mosquitto drops to its own user (it needs no file
  after reading the config). Owned by the demo, killed and reaped by :meth:`DemoBroker.stop`.
- :func:`gateway_config`: the gateway (connector ``mqtt``, QoS 0, JSON payloads, content type
  ``application/json`` on MQTT 5), built in code next to the system file's gateways: the
  system file stays runnable without a broker.
- :func:`publisher`: a demo thread writing the engine's state and the phase every 10 ms until
  ``State.sensor_stop`` is set (then its writer's counters go to ``State.writers``, for the
  loss equation of ``tel/mqtt``).
- :class:`Subscriber`: a plain paho client on the broker counting messages per phase in
  ``State.mqtt_telemetry`` (paho's network thread).

Nothing here raises into the demo from a thread: a failing publisher records its error in
``State.errors`` (the demo then exits 1).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
from taktora.connectors import ChannelDescriptor, ChannelWriter, Direction, Routing
from taktora.connectors.gateway.config import GatewayConfig
from taktora.system.demo.control_models import State
from taktora.transport import Node

log = logging.getLogger("taktora.demo")

CHANNEL = "tel/mqtt"
TOPIC = "demo/control/telemetry"
PERIOD_S = 0.01
START_S = 10.0


def _mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").is_file():
        found = "/usr/sbin/mosquitto"
    return found


def missing() -> str | None:
    """None if the MQTT telemetry can run here, else why not."""
    if _mosquitto() is None:
        return ("mosquitto is not installed: `sudo apt-get install -y mosquitto` (or "
                ".ci/system-deps as root)")
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return "paho-mqtt (extra 'mqtt') is not installed"
    return None


class DemoBroker:
    """One mosquitto for the demo on a free loopback port (see the module doc)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tk-demo-mqtt-")
        root = Path(self._dir.name)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.config = root / "mosquitto.conf"
        self.config.write_text("\n".join([
            f"listener {self.port} 127.0.0.1", "set_tcp_nodelay true", "allow_anonymous true",
            "persistence false", "log_dest stderr", "log_type error", "log_type warning"]) + "\n")
        self._log = root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DemoBroker:
        """Start mosquitto and wait (at most START_S) until it accepts connections; RuntimeError
        with its log when it exits or does not answer."""
        binary = _mosquitto()
        assert binary is not None
        with self._log.open("wb") as err:
            self.proc = subprocess.Popen([binary, "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{self._log.read_text(errors='replace')}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"mosquitto did not accept connections on {self.port} in {START_S} s")

    def stop(self) -> None:
        """Kill and reap the broker, remove its directory; idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(5)
        self._dir.cleanup()


def descriptor() -> ChannelDescriptor:
    """The ``tel/mqtt`` channel (demo process -> gateway ``mqtt`` -> topic TOPIC, QoS 0)."""
    return ChannelDescriptor(CHANNEL, Direction.OUTBOUND, codec="json", max_payload=256,
                             buffer_size=64, routing=Routing("mqtt", TOPIC, {"qos": 0}))


def gateway_config(template: GatewayConfig, port: int) -> GatewayConfig:
    """Gateway ``mqtt`` to the demo's broker, with ``template``'s policies (reconnect, poll,
    shutdown timeout, iceoryx2 prefix)."""
    from taktora.connectors.mqtt import MqttSettings

    return attrs.evolve(template, name="mqtt", connector="mqtt", channels=(descriptor(),),
                        settings=MqttSettings(port=port, client_id="taktora-demo-telemetry"))


def publisher(prefix: str, desc: ChannelDescriptor, st: State) -> None:
    """Write ``{"phase", "speed", "throttle"}`` on ``tel/mqtt`` every PERIOD_S until
    ``st.sensor_stop`` (a demo thread)."""
    try:
        with Node("demo-ctl-mqtt", prefix=prefix) as node:
            w: ChannelWriter[Any] = ChannelWriter(node, desc)
            next_t = time.monotonic()
            while not st.sensor_stop.is_set():
                w.send({"phase": st.phase, "speed": round(st.speed, 1),
                        "throttle": round(st.throttle, 1)})
                next_t += PERIOD_S
                delay = next_t - time.monotonic()
                if delay > 0:
                    st.sensor_stop.wait(delay)
                else:
                    next_t = time.monotonic()
            st.writers[CHANNEL] = w.stats()
    except Exception as exc:
        st.errors.append(f"mqtt publisher: {type(exc).__name__}: {exc}")
        log.exception("demo MQTT publisher failed")


class Subscriber:
    """A plain paho MQTT 5 client subscribed to TOPIC, counting per phase (see the module)."""

    def __init__(self, port: int, st: State) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)

        def got(client: Any, userdata: Any, msg: Any) -> None:
            st.mqtt_telemetry[st.phase] += 1

        self.client.on_message = got
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPIC, 0)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
