#!/usr/bin/env bash
# Where the time of one `berth up --wait` goes, end to end: the CLI's and the control plane's start-up milestones
# (BERTH_TRACE_STARTUP=1), the engine's own create/start events (docker events) and Berth's events, on one clock.
#   bench/startup/profile.sh [N] [docker|process]     N replicas of busybox/sleep (default 40, docker); bounded: 120 s.
# Prints each milestone in ms after the command started, then per phase the first/median/last replica.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-40}; RUNTIME=${2:-docker}
IMAGE=${BERTH_BENCH_IMAGE:-berth-test/busybox:base}
BERTH=(${BERTH_BENCH_CLI:-dotnet $PWD/src/Berth.Cli/bin/Release/net10.0/berth.dll})
work=$(mktemp -d /tmp/berth-profile.XXXXXX)
trap 'cd "$work" && timeout 60 "${BERTH[@]}" down >/dev/null 2>&1 || true; kill $dpid 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$RUNTIME" = docker ]; then
  # BERTH_BENCH_NETWORK=host: on the host network instead of a pod each (as bench/startup/docker.sh).
  printf 'name: prof\nservices:\n  t: {image: %s, run: [sleep, "3600"], replicas: %s, stop_grace_period: 1s%s}\n' "$IMAGE" "$N" \
    "$([ "${BERTH_BENCH_NETWORK:-pod}" = host ] && echo ', network: host')" >"$work/berth.yaml"
else
  printf 'name: prof\nservices:\n  t: {run: [sleep, "3600"], replicas: %s, stop_grace_period: 1s}\n' "$N" >"$work/berth.yaml"
fi
dpid=
if [ "$RUNTIME" = docker ]; then
  docker events --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' --filter type=container --filter label=berth.app=prof >"$work/docker-events" &
  dpid=$!
fi
cd "$work"
sleep 0.3
t0=$(date +%s%N)
BERTH_TRACE_STARTUP=1 timeout 120 "${BERTH[@]}" up --wait --no-build 2>"$work/cli-trace" >/dev/null || echo "berth up --wait failed or timed out" >&2
t1=$(date +%s%N)
url=$(sed -E 's/.*"url":"([^"]+)".*/\1/' .berth/api.json); token=$(cat .berth/api-token)
curl -s -H "Authorization: Bearer $token" "$url/v1/events?limit=1000" >"$work/events.json"
sleep 0.3
python3 - "$t0" "$t1" "$work" <<'PY'
import json, sys, datetime, statistics, os
t0 = int(sys.argv[1]) / 1e6; t1 = int(sys.argv[2]) / 1e6; work = sys.argv[3]
rows = []
for f in ("cli-trace", ".berth/control-plane.log", ".berth/data-plane.log"):
    if not os.path.exists(os.path.join(work, f)):
        continue
    for line in open(os.path.join(work, f), errors="replace"):
        p = line.split(None, 3)
        if len(p) == 4 and p[0] == "startup-trace":
            rows.append((int(p[1]) - t0, {"cli-trace": "cli  ", ".berth/data-plane.log": "dp   "}.get(f, "cp   ") + p[3].strip()))
for ms, what in sorted(rows):
    print(f"{ms:8.0f} ms  {what}")
phases = {}
for e in json.load(open(os.path.join(work, "events.json"))):
    t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() * 1000 - t0
    phases.setdefault("berth " + e["type"], []).append(t)
path = os.path.join(work, "docker-events")
if os.path.exists(path):
    for line in open(path):
        p = line.split()
        if len(p) >= 2:
            phases.setdefault("engine " + p[1], []).append(int(p[0]) / 1e6 - t0)
print(f"{'phase':24} {'n':>4} {'first':>8} {'median':>8} {'last':>8}  (ms after the command)")
for k, v in sorted(phases.items(), key=lambda kv: min(kv[1])):
    print(f"{k:24} {len(v):4} {min(v):8.0f} {statistics.median(v):8.0f} {max(v):8.0f}")
print(f"berth up --wait returned (all ready): {t1 - t0:.0f} ms")
PY
