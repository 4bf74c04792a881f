"""The demo process's side of the control demo (:mod:`taktora.system.demo.control`): the
shared :class:`State`, the engine model feeding the CAN sensor, the plant reading the actuator
commands, the application thread reading the controller's status, and the CPU hog.

Each function runs on a thread of its own started by the demo; each writes only its own
fields of :class:`State`, and an exception is recorded in ``State.errors`` (the demo then exits
1) and logged, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import attrs
from taktora.connectors import ChannelDescriptor, ChannelReader, ChannelWriter
from taktora.connectors.channel import ReaderStats, WriterStats
from taktora.connectors.model import FrozenMap
from taktora.transport import Node
from taktora.transport.channel import OverflowPolicy

log = logging.getLogger("taktora.demo")

SENSOR_PERIOD_S = 0.002


@attrs.define
class State:
    """What the demo's threads share (each field written by one thread)."""

    phase: str = "steady"
    speed: float = 0.0
    throttle: float = 0.0  # what the engine follows
    commands: int = 0
    drive: bool = False  # the EtherCAT drive is there: the engine follows ec/di
    drive_values: int = 0
    telemetry: Counter[str] = attrs.field(factory=Counter)  # per phase (zenoh callback)
    mqtt_telemetry: Counter[str] = attrs.field(factory=Counter)  # per phase (paho callback)
    status: dict[str, Any] = attrs.field(factory=dict)  # the controller's last status
    final: dict[str, Any] | None = None
    summary: dict[str, Any] = attrs.field(factory=dict)
    windows: dict[str, list[tuple[int, int, int]]] = attrs.field(factory=dict)  # p50, p99, max
    late: dict[str, int] = attrs.field(factory=Counter)
    writers: dict[str, WriterStats] = attrs.field(factory=dict)
    readers: dict[str, ReaderStats] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)
    sensor_stop: threading.Event = attrs.field(factory=threading.Event)
    plant_stop: threading.Event = attrs.field(factory=threading.Event)
    app_stop: threading.Event = attrs.field(factory=threading.Event)
    hog_stop: threading.Event = attrs.field(factory=threading.Event)
    mode_stop: threading.Event = attrs.field(factory=threading.Event)


def sensor(prefix: str, desc: ChannelDescriptor, st: State) -> None:
    """The engine: speed follows 40 rpm per % throttle (time constant 0.3 s); its values go
    out as EngineStatus every SENSOR_PERIOD_S through the can gateway."""
    try:
        with Node("demo-ctl-sensor", prefix=prefix) as node:
            w: ChannelWriter[Any] = ChannelWriter(node, desc)
            next_t = last = time.monotonic()
            while not st.sensor_stop.is_set():
                now = time.monotonic()
                st.speed += (now - last) * (40.0 * st.throttle - st.speed) / 0.3
                st.speed = max(0.0, min(16000.0, st.speed))
                last = now
                w.send({"EngineSpeed": round(st.speed * 4) / 4, "CoolantTemp": 90,
                        "ThrottlePos": round(st.throttle * 2) / 2})
                next_t += SENSOR_PERIOD_S
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = time.monotonic()
            st.writers["can/sensor"] = w.stats()
    except Exception as exc:
        st.errors.append(f"sensor: {type(exc).__name__}: {exc}")
        log.exception("demo sensor failed")


def plant(prefix: str, desc: ChannelDescriptor, drive: ChannelDescriptor | None,
           st: State) -> None:
    """The actuator: reads the throttle commands that crossed act-tx -> UDP -> act-rx, and with
    the EtherCAT drive what it applied (ec/di, one byte), which the engine then follows."""
    try:
        with Node("demo-ctl-plant", prefix=prefix) as node:
            r: ChannelReader[Any] = ChannelReader(node, desc)
            d: ChannelReader[Any] | None = None if drive is None else ChannelReader(node, drive)
            while not st.plant_stop.is_set():
                idle = True
                for got in r.drain():
                    idle = False
                    if not st.drive:
                        st.throttle = float(got.value["throttle"])
                    st.commands += 1
                for got in d.drain() if d is not None else ():
                    idle = False
                    st.throttle = got.value[0] / 2.55
                    st.drive_values += 1
                if idle:
                    time.sleep(0.001)
            st.readers["act/cmd"] = r.stats()
            if d is not None:
                st.readers["ec/di"] = d.stats()
    except Exception as exc:
        st.errors.append(f"plant: {type(exc).__name__}: {exc}")
        log.exception("demo plant failed")


def app_side(prefix: str, descs: dict[str, ChannelDescriptor], st: State) -> None:
    """Reads the controller's status and the supervisor's summaries; sends ``{"run": false}``
    on app/mode once ``mode_stop`` is set."""
    try:
        with Node("demo-ctl-app", prefix=prefix) as node:
            status: ChannelReader[Any] = ChannelReader(node, descs["app/status"])
            summary: ChannelReader[Any] = ChannelReader(node, descs["app/summary"])
            mode: ChannelWriter[Any] = ChannelWriter(node, descs["app/mode"])
            next_mode = 0.0
            while not st.app_stop.is_set():
                for got in status.drain():
                    v = got.value
                    st.status = v
                    if v.get("final"):
                        st.final = v
                    elif v.get("tick", 0) > 200:  # the first windows include the start
                        st.windows.setdefault(st.phase, []).append(
                            (int(v["p50_us"]), int(v["p99_us"]), int(v["max_us"])))
                for got in summary.drain():
                    st.summary = got.value
                if st.mode_stop.is_set() and st.final is None and time.monotonic() > next_mode:
                    mode.send({"run": False})
                    next_mode = time.monotonic() + 0.2
                time.sleep(0.005)
    except Exception as exc:
        st.errors.append(f"app: {type(exc).__name__}: {exc}")
        log.exception("demo app thread failed")


def burn_cpu(st: State) -> None:
    x = 0
    while not st.hog_stop.is_set():
        x = (x * 31 + 7) % 1_000_003  # pure Python: holds this process's GIL and one core


def writer_stats(d: dict[str, int]) -> WriterStats:
    return WriterStats(sent=d["sent"], encode_errors=d["encode_errors"], refused=d["refused"],
                       overflow=OverflowPolicy.DROP_OLDEST, no_subscriber=d["no_subscriber"])


def reader_stats(d: dict[str, Any]) -> ReaderStats:
    return ReaderStats(received=d["received"], delivered=d["delivered"], lost=d["lost"],
                       gaps=d["gaps"], malformed=FrozenMap(d["malformed"]),
                       decode_errors=d["decode_errors"], overflow=OverflowPolicy.DROP_OLDEST)
