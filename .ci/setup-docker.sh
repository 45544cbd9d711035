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
start() {
  nohup dockerd --bridge=none --iptables=false --ip6tables=false "$@" >"$log" 2>&1 &
  for _ in $(seq 1 60); do
    if timeout 10 docker version >/dev/null 2>&1; then return 0; fi
    if ! kill -0 $! 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 1
}
if ! start; then
  pkill dockerd || true
  sleep 1
  start --storage-driver=vfs || { echo "dockerd failed to start:"; tail -50 "$log"; exit 1; }
fi
echo "docker: engine started ($(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null) storage)"
