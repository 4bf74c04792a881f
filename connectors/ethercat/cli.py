"""``taktora ethercat ...`` subcommands: the software SubDevice and veth pairs for it.

- ``taktora ethercat sim --iface IF [--device FILE]... [--count N] [--drift-ppm X] [--control]``
  runs SubDevices on IF until Ctrl-C (with ``--control``: JSON-line fault commands on stdin,
  see :mod:`taktora.connectors.ethercat.sim.server`);
- ``taktora ethercat veth up NAME`` creates NAME (for the MainDevice) and NAMEs (for the
  simulator); ``taktora ethercat veth down NAME`` deletes them (root).

Handlers run on the CLI's main thread and return the exit status.
"""

from __future__ import annotations

import sys
from typing import Any

from taktora.connectors.ethercat.errors import VethError


def cmd_sim(args: Any) -> int:
    from taktora.connectors.ethercat.sim.server import run

    return run(args)


def cmd_veth(args: Any) -> int:
    from taktora.connectors.ethercat.sim import veth

    reason = veth.available()
    if reason:
        print(f"taktora ethercat veth: {reason}", file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            master, sim = veth.up(args.name)
            print(f"{master} (MainDevice) <-> {sim} (taktora ethercat sim --iface {sim})")
            return 0
        if not veth.down(args.name):
            print(f"taktora ethercat veth: no pair {args.name}", file=sys.stderr)
            return 1
        return 0
    except VethError as exc:
        print(f"taktora ethercat veth: {exc}", file=sys.stderr)
        return 1


def register(subparsers: Any) -> None:
    """Add ``ethercat sim`` and ``ethercat veth``."""
    from taktora.connectors.ethercat.sim.server import add_arguments

    p = subparsers.add_parser("ethercat", help="EtherCAT tools (software SubDevice, veth pairs)")
    sub = p.add_subparsers(dest="ethercat_command", required=True)
    sim = sub.add_parser("sim", help="run software SubDevices on a network interface")
    add_arguments(sim)
    sim.set_defaults(func=cmd_sim)
    v = sub.add_parser("veth", help="create or delete a veth pair NAME <-> NAMEs (root)")
    v.add_argument("action", choices=["up", "down"])
    v.add_argument("name", help="name of the MainDevice end (the simulator end gets an 's')")
    v.set_defaults(func=cmd_veth)
