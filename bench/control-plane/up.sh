#!/usr/bin/env bash
# `berth up` to all-Ready, next to `docker-compose up -d` of the same trivial service on the same Docker engine.
#   bench/control-plane/up.sh [RUNS]        (BERTH_BENCH_DOCKER=0: process cases only; BERTH_BENCH_ONLY_DOCKER=1: Docker cases only)
# Cases, interleaved in each round so machine load hits them alike:
#   shop-process     samples/shop (6 replicas, readiness probes, depends_on chain) on the process driver, pre-built (--no-build)
#   100-process      100 replicas of `sleep` on the process driver
#   100-docker       100 replicas of busybox `sleep` on the Docker driver (host network)
#   100-compose      docker-compose up -d --scale t=100 of the same busybox `sleep` (the peer)
# Ready means: Berth reports every replica Ready (no probe: running); compose returns when every container runs.
# Traffic: none but the CLI's to its API on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
IMAGE=${BERTH_BENCH_IMAGE:-berth-test/busybox:base}
dotnet build src/Berth.Cli -c Release -v q -nologo >/dev/null
BERTH=(dotnet "$PWD/src/Berth.Cli/bin/Release/net10.0/berth.dll")
work=$(mktemp -d /tmp/berth-up-bench.XXXXXX)
mkdir -p "$work/proc" "$work/docker" "$work/compose"
cat >"$work/proc/berth.yaml" <<YAML
name: benchproc
services:
  t: {run: [sleep, "3600"], replicas: 100, stop_grace_period: 1s}
YAML
cat >"$work/docker/berth.yaml" <<YAML
name: benchdocker
services:
  t: {image: $IMAGE, run: [sleep, "3600"], replicas: 100, stop_grace_period: 1s}
YAML
cat >"$work/compose/docker-compose.yml" <<YAML
version: "3"
services:
  t: {image: $IMAGE, command: [sleep, "3600"], network_mode: host, stop_grace_period: 1s}
YAML
( cd samples/shop && dotnet build app/Shop.csproj -c Release -o app/out -v q -nologo >/dev/null )

now() { date +%s.%N; }
# Waits until the API in $1/.berth lists $2 replicas, all ready.
wait_ready() {
  local dir=$1 want=$2 url token
  url=$(sed -E 's/.*"url":"([^"]+)".*/\1/' "$dir/.berth/api.json"); token=$(cat "$dir/.berth/api-token")
  for _ in $(seq 1 6000); do
    n=$(curl -s -H "Authorization: Bearer $token" "$url/v1/replicas" | grep -o '"phase":"ready"' | wc -l)
    [ "$n" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "timeout waiting for $want ready in $dir" >&2; return 1
}
berth_case() { # dir replicas [up args]
  local dir=$1 want=$2; shift 2
  local t0 t1
  t0=$(now); ( cd "$dir" && "${BERTH[@]}" up -d --no-build "$@" 2>/dev/null ); wait_ready "$dir" "$want"; t1=$(now)
  ( cd "$dir" && "${BERTH[@]}" down >/dev/null 2>&1 )
  echo "$t1 - $t0" | bc
}
compose_case() {
  local t0 t1
  t0=$(now); ( cd "$work/compose" && docker-compose -p benchcompose up -d --scale t=100 >/dev/null 2>&1 ); t1=$(now)
  ( cd "$work/compose" && docker-compose -p benchcompose down -t 1 >/dev/null 2>&1 )
  echo "$t1 - $t0" | bc
}
docker_ok=0
if [ "${BERTH_BENCH_DOCKER:-1}" = 1 ] && timeout 10 docker info >/dev/null 2>&1; then docker_ok=1; else echo "Docker engine not answering: Docker cases skipped" >&2; fi
only_docker=${BERTH_BENCH_ONLY_DOCKER:-0}
cases=()
[ "$only_docker" = 1 ] || cases+=(shop-process 100-process)
[ $docker_ok = 1 ] && cases+=(100-docker 100-compose)
declare -A results
for round in $(seq 1 "$RUNS"); do
  if [ "$only_docker" != 1 ]; then
    r=$(berth_case samples/shop 6); results[shop-process]+="$r "; echo "round $round shop-process $r" >&2
    r=$(berth_case "$work/proc" 100); results[100-process]+="$r "; echo "round $round 100-process $r" >&2
  fi
  if [ $docker_ok = 1 ]; then
    r=$(berth_case "$work/docker" 100); results[100-docker]+="$r "; echo "round $round 100-docker $r" >&2
    r=$(compose_case); results[100-compose]+="$r "; echo "round $round 100-compose $r" >&2
  fi
done
echo "case            runs (seconds to all Ready)      median"
for c in "${cases[@]}"; do
  median=$(echo ${results[$c]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf "%-15s %-32s %s\n" "$c" "${results[$c]}" "$median"
done
rm -rf "$work"
