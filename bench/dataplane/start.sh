#!/usr/bin/env bash
# Data plane process start: time from exec to its channel listening (data-plane.json written), and its memory, for the
# active data plane (no routes saved) and the standby (which also warms its request path), beside nginx's start to
# listening as the peer (a proxy process started from nothing). Loopback only; bounded (RUNS starts each).
# Usage: bench/dataplane/start.sh [runs=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
echo "building the berth CLI (Debug, as the tests use it)…" >&2
dotnet build -v q --nologo src/Berth.Cli >/dev/null
BERTH_DLL=src/Berth.Cli/bin/Debug/net10.0/berth.dll
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 32 /dev/urandom | base64 >"$work/data-plane-token"
chmod 600 "$work/data-plane-token"
ms() { echo $(( ($2 - $1) / 1000000 )); }

measure() { # $1 label, $2 file to wait for, rest: command
  local label=$1 file=$2; shift 2
  for _ in $(seq 1 "$RUNS"); do
    rm -f "$work/$file"
    local t0; t0=$(date +%s%N)
    "$@" >"$work/log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 6000); do [ -f "$work/$file" ] && break; sleep 0.005; done
    local t1; t1=$(date +%s%N)
    local rss; rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo "$label start_ms=$(ms "$t0" "$t1") rss_kb=$rss"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
}

measure active data-plane.json dotnet "$BERTH_DLL" __data-plane --state "$work"
measure standby data-plane-standby.json dotnet "$BERTH_DLL" __data-plane --state "$work" --standby
if command -v nginx >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  cat >"$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 64; }
http { access_log off; server { listen 127.0.0.1:$port; return 200 ok; } }
CONF
  for _ in $(seq 1 "$RUNS"); do
    t0=$(date +%s%N)
    nginx -c "$work/nginx.conf" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.005; done
    t1=$(date +%s%N)
    echo "nginx start_ms=$(ms "$t0" "$t1") rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
fi
