#!/usr/bin/env bash
# Issue #13's acceptance load test: the shop sample (samples/shop, README's first app) through the mesh in host mode and
# with every service `network: isolated` (pods), one after the other in one run, loopback only, bounded by wrk's duration.
# The load goes to the frontend's stable port, GET /: frontend -> mesh -> api -> mesh -> db (two orders listed), so in
# pods each request crosses the mesh into three pods and out of two by service address.
# Two copies of the sample on free ports (the fixed 7100-7400 may be taken on a shared machine), one folder (one state
# store) per mode, specs differing only in network:, each brought up and down in turn. Not one folder for both: an up
# where the other mode's app was first starts that app's last revision from the kept state, then rolls out the new
# one, so for a few seconds Ready replicas run in the other mode (seen every time, round 9).
# Needs: root (pods for process services), wrk, curl, the .NET SDK. Prints req/s, p50 and p99 of each mode and the ratios.
# OTLP=off (environment) turns the sample's telemetry export off in both modes: berth points OTEL_EXPORTER_OTLP_ENDPOINT
# at the control plane on the host's 127.0.0.1, which a pod cannot reach (its exports fail), so with export on the two
# modes do different telemetry work; OTLP=off compares the mesh alone.
# Also prints CPU per request (user + system, /proc) of the data plane, the replicas and the control plane in each mode:
# on a shared machine req/s follows the others' load, CPU per request much less so.
# Usage: [OTLP=off] bench/pods/sample.sh [duration=10s] [connections=32] [threads=2] [runs=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
DURATION=${1:-10s}; CONNS=${2:-32}; THREADS=${3:-2}; RUNS=${4:-1}
for tool in wrk curl dotnet python3; do
  command -v "$tool" >/dev/null || { echo "bench/pods: '$tool' not found (apt-get install -y wrk curl python3)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench/pods: needs root (network: isolated process services run in pods)" >&2; exit 2; }

work=$(mktemp -d)
berth() { "$repo/berth" "$@"; }
cleanup() { for m in host isolated; do [ -f "$work/$m/$m.yaml" ] && berth down -f "$work/$m/$m.yaml" >/dev/null 2>&1 || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

for m in host isolated; do
  mkdir -p "$work/$m"
  (cd samples/shop && tar --exclude=./app/out --exclude=./app/bin --exclude=./app/obj --exclude=./.berth -cf - .) | tar -C "$work/$m" -xf -
done
FRONT=$(free_port); API=$(free_port); WORKER=$(free_port); DB=$(free_port)
ports="s/\\b7100\\b/$FRONT/; s/\\b7200\\b/$API/; s/\\b7300\\b/$WORKER/; s/\\b7400\\b/$DB/"
otlp=(-e 's/^x-shop: &shop$/&/')
[ "${OTLP:-on}" = off ] && otlp=(-e '/^  runtime: /a\  environment: {OTEL_EXPORTER_OTLP_ENDPOINT: ""}')
sed -e "$ports" -e "s/^name: shop$/name: shopbench/" "${otlp[@]}" samples/shop/berth.yaml >"$work/host/host.yaml"
sed -e "$ports" -e "s/^name: shop$/name: shopbench/" "${otlp[@]}" -e '/^  runtime: /a\  network: isolated' samples/shop/berth.yaml >"$work/isolated/isolated.yaml"

to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'; }
declare -A RPS P50 P99 ERR CPU_DP CPU_APP CPU_CP
# CPU seconds (user + system, all threads) of the app's processes by role: the data plane, the replicas (supervisors
# included), the control plane. Per request it tells the modes apart on a shared machine, where req/s follows the load.
cpu_by_role() { # replica pids
  python3 - "$work" "$@" <<'PY'
import os, sys
work, replicas = sys.argv[1], set(sys.argv[2:])
hz = os.sysconf('SC_CLK_TCK'); dp = app = cp = 0.0
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace')
        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        ppid, t = stat[1], (int(stat[11]) + int(stat[12])) / hz
    except OSError:
        continue
    if '__data-plane' in cmd and work in cmd and '--standby' not in cmd: dp += t
    elif '__control-plane' in cmd and work in cmd: cp += t
    elif pid in replicas or ppid in replicas or 'berth-supervisor' in cmd and work in cmd: app += t
print(dp, app, cp)
PY
}
up() { # mode
  berth up -d -f "$work/$1/$1.yaml" >"$work/$1.up.log" 2>&1 || { echo "bench/pods: berth up ($1) failed:" >&2; cat "$work/$1.up.log" >&2; exit 1; }
  local ready=no
  for _ in $(seq 1 600); do
    [ "$(berth ps -f "$work/$1/$1.yaml" -o json 2>/dev/null | grep -o '"phase": *"ready"' | wc -l)" -ge 6 ] && { ready=yes; break; }; sleep 0.2
  done
  [ $ready = yes ] || { echo "bench/pods: not all 6 replicas Ready within 120 s ($1):" >&2; berth ps -f "$work/$1/$1.yaml" >&2; exit 1; }
  # Each replica runs in a pod in isolated mode and on the host's network in host mode, or the comparison means nothing.
  # (A Ready replica between two processes, restarting, has no pid: it is named and the run stops. Replicas not Ready are
  # left out: one still starting — the worker's autoscaler may add one — is its supervisor, not yet in its pod.)
  local pids; pids=$(berth ps -f "$work/$1/$1.yaml" -o json | python3 -c 'import json,sys; print(" ".join(str(r["pid"]) if "pid" in r else "none:" + r["id"] for r in json.load(sys.stdin) if r.get("phase") == "ready"))')
  case " $pids " in *" none:"*) echo "bench/pods: a replica has no process right now ($1): $pids" >&2; berth ps -f "$work/$1/$1.yaml" >&2; exit 1;; esac
  for pid in $pids; do
    local same=no; [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/self/ns/net)" ] && same=yes
    if { [ "$1" = isolated ] && [ $same = yes ]; } || { [ "$1" = host ] && [ $same = no ]; }; then
      echo "bench/pods: replica pid $pid is not where $1 mode puts it (in the host's network namespace: $same)" >&2; cat "$work/$1.up.log" >&2; exit 1
    fi
  done
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$FRONT/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench/pods: the frontend on $FRONT did not answer ($1)" >&2; exit 1
}
measure() { # mode
  wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$FRONT/" >/dev/null
  local pids; pids=$(berth ps -f "$work/$1/$1.yaml" -o json | python3 -c 'import json,sys; print(" ".join(str(r.get("pid", "")) for r in json.load(sys.stdin)))')
  local c0; c0=$(cpu_by_role $pids)
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$FRONT/")
  local c1; c1=$(cpu_by_role $pids)
  local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
  read -r CPU_DP[$1] CPU_APP[$1] CPU_CP[$1] < <(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f %.0f %.0f\n", (y[1]-x[1])*1e6/n, (y[2]-x[2])*1e6/n, (y[3]-x[3])*1e6/n }')
  ERR[$1]=$(echo "$out" | grep -E "Non-2xx|Socket errors" | tr -s ' ' | paste -sd';' - || true)
  RPS[$1]=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  P50[$1]=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')"); P99[$1]=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  echo "$1: ${RPS[$1]} req/s, p50 ${P50[$1]} ms, p99 ${P99[$1]} ms, CPU µs/req: data plane ${CPU_DP[$1]}, replicas ${CPU_APP[$1]}, control plane ${CPU_CP[$1]} ${ERR[$1]:+(errors: ${ERR[$1]})}" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
for run in $(seq 1 "$RUNS"); do
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  for mode in host isolated; do
    up "$mode"
    # Two orders, so GET / lists them: api reads three keys from db per request.
    for item in tea cake; do curl -fsS -X POST "http://127.0.0.1:$FRONT/orders?item=$item&qty=1" >/dev/null; done
    measure "$mode"
    berth down -f "$work/$mode/$mode.yaml" >/dev/null 2>&1
  done
  after=$(cut -d' ' -f1-3 /proc/loadavg)
  echo; echo "Run $run of $RUNS: shop sample (OTLP export ${OTLP:-on}), GET / on the frontend's stable port, wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average $before before / $after after"; echo
  echo "| mode | req/s | p50 ms | p99 ms | req/s vs host | p99 vs host | CPU µs/req data plane + replicas (control plane) | errors |"
  echo "|---|---:|---:|---:|---:|---:|---|---|"
  for m in host isolated; do
    echo "| $m | ${RPS[$m]} | ${P50[$m]} | ${P99[$m]} | $(ratio "${RPS[$m]}" "${RPS[host]}") | $(ratio "${P99[$m]}" "${P99[host]}") | ${CPU_DP[$m]} + ${CPU_APP[$m]} = $((CPU_DP[$m] + CPU_APP[$m])) (${CPU_CP[$m]}) | ${ERR[$m]:-none} |"
  done
done
