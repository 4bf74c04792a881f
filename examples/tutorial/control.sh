#!/usr/bin/env bash
# Tutorial step 4: supervise and control the echo system from the command line.
# Run it:  bash examples/tutorial/control.sh [PORT]   (PORT: a free TCP port; default 1900)
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # as in step 3
port=${1:-1900}

# one process per actor; the admin port lets other commands attach
taktora run echo.toml --mode multiprocess --port "$port" --for 120 &
run=$!
trap 'kill "$run" 2>/dev/null || true' EXIT

for _ in $(seq 100); do            # wait until the gateway is Up (at most about 30 s)
  taktora health --port "$port" > /dev/null 2>&1 && break
  sleep 0.2
done

taktora status --port "$port"      # the supervision tree: states, restarts, pids
taktora health --port "$port"      # every gateway's health; exit status 1 if one is not Up
python echo_app.py                 # some traffic through the gateway
taktora stats --port "$port"       # the gateway's loss ledger, per channel

taktora control connectors/echo pause --port "$port"    # control messages to one gateway
taktora control connectors/echo resume --port "$port"
taktora control connectors/echo stats --port "$port" \
  | grep -E '^(health|paused|connects|connector\.)'    # the counters, filtered to a few

taktora param get connectors/echo --port "$port"                  # its settings
taktora param set connectors/echo delay_s=0.05 --port "$port"     # applied live
taktora param set connectors/echo max_pending=8 --port "$port"    # applied by a reconnect

trap - EXIT
kill "$run"                        # the orderly stop; taktora run prints "stopped"
wait "$run"
