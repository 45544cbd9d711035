#!/usr/bin/env bash
# Installs docker.io when missing and starts dockerd with no bridge and no iptables (loopback-only
# network rule: containers use host networking). Falls back to vfs storage where overlay is unavailable.
set -euo pipefail
if ! command -v dockerd >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if timeout 10 docker version >/dev/null 2>&1; then
  echo "docker: engine already running"
  exit 0
fi
log=/tmp/berth-dockerd.log
pid=
start() {
  nohup dockerd --bridge=none --iptables=false --ip6tables=false "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do
    if timeout 10 docker version >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 1
}
# Stops only the dockerd this script started (by its pid), never another engine on the machine.
stop_ours() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}
if ! start; then
  stop_ours
  start --storage-driver=vfs || { echo "dockerd failed to start:"; tail -50 "$log"; stop_ours; exit 1; }
fi
echo "docker: engine started ($(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null) storage)"
