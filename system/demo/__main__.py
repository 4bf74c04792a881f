"""``python -m taktora.system.demo``: runs the demo's sections in order (see the package)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from taktora.system.demo import gateways
from taktora.system.demo.control import run_control
from taktora.system.demo.latency import run_latency


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo sections; 0 if everything arrived intact and the gateways recovered."""
    ap = argparse.ArgumentParser(
        description="taktora end to end: zero-copy pub/sub, supervised UDP gateways, then a "
                    "control application")
    ap.add_argument("--quick", action="store_true", help="fewer messages, shorter phases")
    ap.add_argument("--latency", action="store_true", help="only the latency table")
    ap.add_argument("--control", action="store_true",
                    help="only the control section (examples/demo_control.toml)")
    ap.add_argument("--mode", choices=("inprocess", "multiprocess"), default="inprocess",
                    help="actor system base of the gateway section")
    ap.add_argument("--port", type=int, default=None, help="admin port (multiprocess)")
    ap.add_argument("--config", default=None, help="system file (default examples/demo.toml)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if args.control:
        return run_control(quick=args.quick)
    status = run_latency(args.quick)
    if args.latency:
        return status
    status = status or gateways.run_demo(quick=args.quick, mode=args.mode, port=args.port,
                                         config_path=args.config)
    return status or run_control(quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
