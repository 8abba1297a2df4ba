#!/usr/bin/env bash
# Start a Docker engine for the docker platform's tests, unless one already answers.
# Idempotent; waits at most DOCKERD_WAIT_S (default 60) seconds for the socket.
# Its bridge and default address pool stay inside 198.18.0.0/15 (the project's test range).
# The daemon is left running on purpose: other sessions on this machine may use it.
set -euo pipefail

WAIT_S="${DOCKERD_WAIT_S:-60}"
LOG="${DOCKERD_LOG:-/var/log/dockerd-harness.log}"

if docker info >/dev/null 2>&1; then
    echo "dockerd already answers; nothing to start"
    exit 0
fi
if ! command -v dockerd >/dev/null; then
    echo "dockerd is not installed: apt-get install -y docker.io" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "starting dockerd needs root" >&2
    exit 1
fi

# setsid + nohup: the daemon must outlive this script and the shell that ran it
setsid nohup dockerd \
    --bip 198.19.0.1/24 \
    --default-address-pool base=198.19.0.0/16,size=24 \
    >>"$LOG" 2>&1 </dev/null &
pid=$!

for _ in $(seq 1 "$((WAIT_S * 5))"); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd started (pid $pid, log $LOG)"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "dockerd exited at start; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
echo "dockerd did not answer within ${WAIT_S} s; the end of $LOG:" >&2
tail -n 30 "$LOG" >&2
exit 1
