#!/usr/bin/env bash
# Tutorial step 3: the echo system and an app using it, as you would start them in two
# terminals.  Run it:  bash examples/tutorial/run_echo.sh
set -euo pipefail
cd "$(dirname "$0")"
# taktora run imports "echo_connector:EchoConnector": make this folder importable
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

taktora run echo.toml --for 60 &   # terminal 1: the gateway (at most 60 s)
run=$!
trap 'kill "$run" 2>/dev/null || true' EXIT   # if the app fails: do not leave it running

python echo_app.py                 # terminal 2: the app; waits for the gateway, 5 round trips

trap - EXIT
kill "$run"                        # SIGTERM: the orderly stop Ctrl-C does in terminal 1
wait "$run"                        # its exit status: 0 after "stopped"
