#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine (idempotent, quiet).
# Installs Debian's docker.io when dockerd is missing, starts dockerd in the background
# (log /var/log/cove-dockerd.log, pidfile /var/run/cove-dockerd.pid) when `docker info` fails,
# and waits until the engine answers.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq docker.io >/dev/null
fi

pidfile=/var/run/cove-dockerd.pid
log=/var/log/cove-dockerd.log
if ! { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    # A stale pidfile of dockerd's own would make it refuse to start.
    if [ -s /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    nohup dockerd >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
fi

for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.5
done
echo "docker.sh: dockerd did not answer within 60 s; see $log" >&2
exit 1
