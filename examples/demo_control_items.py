"""Item factories of examples/demo_control.toml (the control section of ``make demo``).

- ``make_control``: the 1 kHz speed controller (host "control", a dedicated process). Every
  tick it takes the newest EngineStatus frame from ``can/engine`` (DBC-decoded by the CAN
  gateway), runs a PI controller towards the setpoint and writes the throttle command on
  ``act/cmd``; every 10th tick the same command as one byte on ``ec/do`` (the EtherCAT drive)
  and a telemetry record on ``tel/ctl``; every 100th tick a status
  record on ``app/status`` with its own period error over the last 100 ticks (time between two
  runs minus 1 ms: p50/p99/max in microseconds) and its channel counters (the writer / reader
  stats the demo puts into the loss equations). ``{"run": false}`` on ``app/mode`` stops the
  commands and telemetry; the status record sent next carries ``"final": true``.
- ``make_supervisor``: every 100 ms, window statistics of the engine speed (what it read on
  ``can/engine``) and the controller's last status, on ``app/summary``.
- ``make_alarm``: on every ``app/summary``: logs (WARNING) when the speed left the band.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taktora.actors.executor import Context, ItemEnv
from taktora.connectors.can import use_dbc

log = logging.getLogger("demo_control_items")

Step = Callable[[Context], None]

SETPOINT_RPM = 2000.0
PERIOD_NS = 1_000_000
DBC = Path(__file__).resolve().parent / "can" / "vehicle.dbc"


def _writer_stats(w: Any) -> dict[str, int]:
    s = w.stats()
    return {"sent": s.sent, "encode_errors": s.encode_errors, "refused": s.refused,
            "no_subscriber": s.no_subscriber}


def _reader_stats(r: Any) -> dict[str, Any]:
    s = r.stats()
    return {"received": s.received, "delivered": s.delivered, "lost": s.lost, "gaps": s.gaps,
            "malformed": dict(s.malformed), "decode_errors": s.decode_errors}


def _pct(sorted_values: list[int], pct: float) -> int:
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def make_control(env: ItemEnv) -> Step:
    """The 1 kHz PI speed controller (see the module docstring)."""
    use_dbc(DBC)  # the dbc:EngineStatus codec in this (dedicated) process
    engine, mode = env.reader("can/engine"), env.reader("app/mode")
    cmd, tel, status = env.writer("act/cmd"), env.writer("tel/ctl"), env.writer("app/status")
    drive = env.writer("ec/do")
    st: dict[str, Any] = {"tick": 0, "last_ns": 0, "errors": [], "speed": 0.0, "frames": 0,
                          "integral": 0.0, "throttle": 0.0, "run": True, "final_sent": False,
                          "late": 0, "max_us": 0}

    def control(ctx: Context) -> None:
        now = time.monotonic_ns()
        if st["last_ns"]:
            err_us = abs(now - st["last_ns"] - PERIOD_NS) // 1000
            st["errors"].append(err_us)
            if err_us > 500:
                st["late"] += 1
            st["max_us"] = max(st["max_us"], err_us)
        st["last_ns"] = now
        st["tick"] += 1
        for got in engine.drain():
            st["speed"] = float(got.value["EngineSpeed"])
            st["frames"] += 1
        for got in mode.drain():
            st["run"] = bool(got.value.get("run", True))
        if st["run"]:
            error = SETPOINT_RPM - st["speed"]
            if st["frames"]:  # no integral wind-up before the sensor's first frame
                st["integral"] = max(-4000.0, min(4000.0, st["integral"] + error * 0.001))
            st["throttle"] = max(0.0, min(100.0, 0.02 * error + 0.5 * st["integral"]))
            cmd.send({"n": st["tick"], "throttle": round(st["throttle"], 3)})
            if st["tick"] % 10 == 0:
                drive.send(bytes([round(st["throttle"] * 2.55)]))
                tel.send({"n": st["tick"], "speed": st["speed"], "throttle": st["throttle"],
                          "t_ns": now})
        final = not st["run"] and not st["final_sent"]
        if st["tick"] % 100 == 0 or final:
            errors = sorted(st["errors"])
            status.send({
                "tick": st["tick"], "speed": st["speed"], "throttle": st["throttle"],
                "frames": st["frames"], "p50_us": _pct(errors, 50), "p99_us": _pct(errors, 99),
                "max_us": errors[-1] if errors else 0, "late": st["late"],
                "max_all_us": st["max_us"], "final": final,
                "writers": {"act/cmd": _writer_stats(cmd), "tel/ctl": _writer_stats(tel),
                            "ec/do": _writer_stats(drive)},
                "readers": {"can/engine": _reader_stats(engine)},
            })
            st["errors"] = []
            st["final_sent"] = st["final_sent"] or final

    return control


def make_supervisor(env: ItemEnv) -> Step:
    """Every 100 ms: min / mean / max engine speed of the window and the controller's last
    status, on ``app/summary``."""
    use_dbc(DBC)
    engine, status, summary = env.reader("can/engine"), env.reader("app/status"), \
        env.writer("app/summary")
    last: dict[str, Any] = {"status": {}}

    def supervise(ctx: Context) -> None:
        speeds = [float(g.value["EngineSpeed"]) for g in engine.drain()]
        for got in status.drain():
            last["status"] = got.value
        s = last["status"]
        summary.send({
            "frames": len(speeds),
            "min": min(speeds, default=0.0), "max": max(speeds, default=0.0),
            "mean": sum(speeds) / len(speeds) if speeds else 0.0,
            "ctl_tick": s.get("tick", 0), "ctl_p99_us": s.get("p99_us", 0),
        })

    return supervise


def make_alarm(env: ItemEnv) -> Step:
    """On every summary: a WARNING when the window's speed left SETPOINT +- 25 %."""
    summary = env.reader("app/summary")

    def alarm(ctx: Context) -> None:
        for got in summary.drain():
            v = got.value
            if v["frames"] and not 0.75 * SETPOINT_RPM <= v["mean"] <= 1.25 * SETPOINT_RPM:
                log.warning("engine speed %.0f rpm outside the band", v["mean"])

    return alarm
