#!/usr/bin/env bash
# `berth up -d` vs `docker-compose up -d` (the peer, Debian's docker-compose 1.29) on the same Docker engine, alternating:
# N busybox containers running `sleep` (host network, no probes), from the command to every container running.
#   bench/startup/docker.sh [RUNS] [COUNTS]        e.g. bench/startup/docker.sh 5 "10 40 100"   (defaults: 3, "10 40 100")
# Berth is the ReadyToRun build (dotnet publish -r linux-x64) in $BERTH_BENCH_OUT (default /tmp/berth-bench-cli); "running"
# is `berth up --wait` returning (every replica Ready; no probe: Ready = running; the CLI asks its API every 100 ms) and the API
# then listing N Ready — compose returns once it has started every one.
# BERTH_START_CONCURRENCY=K runs Berth with K parallel starts (the tuning in docs/benchmarks.md). Bounded: every command has
# a timeout (180 s up, 120 s down) and the whole script stops after BERTH_BENCH_LIMIT seconds (default 1800).
# BERTH_BENCH_NETWORK=host runs Berth's containers on the host network (network: host) instead of each in its own pod
# (NetworkMode none, Berth's default for Docker services); BERTH_BENCH_COMPOSE_NETWORK=none gives compose's containers the
# same isolation as a pod (network_mode: none) instead of the host network.
# BERTH_BENCH_FLOOR=1 adds a third contender, `floor`: the same containers created and started straight through the engine
# API by curl, 16 at a time (bench/startup/engine-floor.sh): a bare client, the engine's time plus curl's own.
# Traffic: none but the CLI's to its API on 127.0.0.1. Installs docker-compose from Debian when it is missing.
set -euo pipefail
LIMIT=${BERTH_BENCH_LIMIT:-1800}
# The whole run is bounded: the script re-runs itself under timeout (cleanup still runs on the TERM it sends).
[ -n "${BERTH_BENCH_BOUNDED:-}" ] || BERTH_BENCH_BOUNDED=1 exec timeout "$LIMIT" "$0" "$@"
cd "$(dirname "$0")/../.."
RUNS=${1:-3}; COUNTS=${2:-"10 40 100"}
IMAGE=${BERTH_BENCH_IMAGE:-berth-test/busybox:base}
OUT=${BERTH_BENCH_OUT:-/tmp/berth-bench-cli}
command -v docker-compose >/dev/null || { apt-get install -y docker-compose >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y docker-compose >/dev/null; }; }
timeout 10 docker info >/dev/null 2>&1 || { echo "the Docker engine does not answer (docker info)" >&2; exit 1; }
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "image $IMAGE is missing: run the Runtime tests once (they import busybox-static as it), or set BERTH_BENCH_IMAGE" >&2; exit 1; }
[ "${BERTH_BENCH_SKIP_PUBLISH:-0}" = 1 ] || dotnet publish src/Berth.Cli -c Release -r linux-x64 --self-contained false -o "$OUT" -v q -nologo >/dev/null
BERTH=("$OUT/berth")
work=$(mktemp -d /tmp/berth-docker-bench.XXXXXX)
cleanup() {
  for d in "$work"/berth-*; do [ -d "$d" ] && (cd "$d" && timeout 120 "${BERTH[@]}" down >/dev/null 2>&1 || true); done
  for d in "$work"/compose-*; do [ -d "$d" ] && (cd "$d" && timeout 120 docker-compose -p "$(basename "$d")" down -t 1 >/dev/null 2>&1 || true); done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 124' TERM
for n in $COUNTS; do
  mkdir -p "$work/berth-$n" "$work/compose-$n"
  printf 'name: bench%s\nservices:\n  t: {image: %s, run: [sleep, "3600"], replicas: %s, stop_grace_period: 1s%s}\n' "$n" "$IMAGE" "$n" \
    "$([ "${BERTH_BENCH_NETWORK:-pod}" = host ] && echo ', network: host')" >"$work/berth-$n/berth.yaml"
  printf 'version: "3"\nservices:\n  t: {image: %s, command: [sleep, "3600"], network_mode: %s, stop_grace_period: 1s}\n' "$IMAGE" "${BERTH_BENCH_COMPOSE_NETWORK:-host}" >"$work/compose-$n/docker-compose.yml"
done
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
berth_case() { # n
  local dir="$work/berth-$1" t0 t1 url token n
  rm -rf "$dir/.berth"
  t0=$(now)
  ( cd "$dir" && timeout 180 "${BERTH[@]}" up --wait --no-build >/dev/null 2>&1 ) || echo "berth up --wait of $1 failed or timed out" >&2
  t1=$(now)
  url=$(sed -E 's/.*"url":"([^"]+)".*/\1/' "$dir/.berth/api.json"); token=$(cat "$dir/.berth/api-token")
  n=$(curl -s -m 5 -H "Authorization: Bearer $token" "$url/v1/replicas" | grep -o '"phase":"ready"' | wc -l || true)
  [ "$n" -eq "$1" ] || echo "berth: $n of $1 ready after up --wait" >&2
  ms "$t0" "$t1"
  ( cd "$dir" && timeout 120 "${BERTH[@]}" down >/dev/null 2>&1 ) || echo "berth down of $1 timed out" >&2
}
compose_case() { # n
  local dir="$work/compose-$1" t0 t1
  t0=$(now)
  ( cd "$dir" && timeout 180 docker-compose -p "compose-$1" up -d --scale t="$1" >/dev/null 2>&1 ) || echo "docker-compose up of $1 failed or timed out" >&2
  t1=$(now)
  running=$(docker ps -q --filter "label=com.docker.compose.project=compose-$1" | wc -l)
  [ "$running" -eq "$1" ] || echo "docker-compose: $running of $1 running" >&2
  ms "$t0" "$t1"
  ( cd "$dir" && timeout 120 docker-compose -p "compose-$1" down -t 1 >/dev/null 2>&1 ) || echo "docker-compose down of $1 timed out" >&2
}
floor_case() { # n
  local net=${BERTH_BENCH_COMPOSE_NETWORK:-host} r
  r=$(bash bench/startup/engine-floor.sh "$1" 16 "floor-$1" "$net") || echo "engine floor of $1 failed" >&2
  bash bench/startup/engine-floor.sh 0 0 "floor-$1" || true
  echo "$r"
}
declare -A results
echo "networks: berth ${BERTH_BENCH_NETWORK:-pod}, compose ${BERTH_BENCH_COMPOSE_NETWORK:-host}" >&2
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r), docker $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null || docker-compose --version)" >&2
for round in $(seq 1 "$RUNS"); do
  for n in $COUNTS; do
    # Alternate which goes first, so a load swing does not always favour one side.
    if [ $((round % 2)) = 1 ]; then order="berth compose"; else order="compose berth"; fi
    [ "${BERTH_BENCH_FLOOR:-0}" = 1 ] && order="$order floor"

    for who in $order; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      r=$("${who}_case" "$n"); results[$who-$n]+="$r "
      echo "round $round $who $n: $r ms (load $load)" >&2
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "containers  berth runs (ms)            compose runs (ms)          berth median  compose median  berth speed vs compose"
for n in $COUNTS; do
  b=$(echo ${results[berth-$n]} | median); c=$(echo ${results[compose-$n]} | median)
  printf "%-11s %-26s %-26s %-13s %-15s %sx\n" "$n" "${results[berth-$n]}" "${results[compose-$n]}" "$b" "$c" "$(echo "scale=2; $c / $b" | bc)"
done
if [ "${BERTH_BENCH_FLOOR:-0}" = 1 ]; then
  echo "containers  engine floor runs (ms)     floor median  compose / floor  (above 1: compose slower than a bare curl client)"
  for n in $COUNTS; do
    f=$(echo ${results[floor-$n]} | median); c=$(echo ${results[compose-$n]} | median)
    printf "%-11s %-26s %-13s %sx\n" "$n" "${results[floor-$n]}" "$f" "$(echo "scale=2; $c / $f" | bc)"
  done
fi
