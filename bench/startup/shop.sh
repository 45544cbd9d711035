#!/usr/bin/env bash
# The shop sample (samples/shop: db and 2 workers, then 2 api replicas once both are healthy, then the frontend) from the command
# to all 6 replicas answering their health check: `berth up -d` (process driver) vs its Aspire AppHost twin (bench/startup/aspire,
# Aspire.Hosting.AppHost 13.6.5), alternating; then the memory of each orchestrator while the app is up.
#   bench/startup/shop.sh [RUNS]      (default 3; bounded: BERTH_BENCH_LIMIT seconds in all, default 1800, and
#                                      BERTH_BENCH_READY_LIMIT seconds a run, default 300; BERTH_BENCH_ONLY=berth|aspire runs one side)
# "Ready": each of the 6 Shop processes answers GET /healthz (frontend/api/worker) or a TCP connect (db) — for Aspire checked
# from outside on its port; for Berth by its readiness probes, the same checks, as `berth up --wait` reports them (the
# replicas are in pods whose ports the host cannot see). Berth runs the app built once into samples/shop/app/out;
# Aspire runs the same project, as AddProject does, through `dotnet run --project … -c Release` (built beforehand, so its
# build step is an up-to-date check). Traffic: loopback only.
set -euo pipefail
LIMIT=${BERTH_BENCH_LIMIT:-1800}
[ -n "${BERTH_BENCH_BOUNDED:-}" ] || BERTH_BENCH_BOUNDED=1 exec timeout "$LIMIT" "$0" "$@"
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${1:-3}
OUT=${BERTH_BENCH_OUT:-/tmp/berth-bench-cli}
if [ "${BERTH_BENCH_SKIP_PUBLISH:-0}" != 1 ]; then
  dotnet publish src/Berth.Cli -c Release -r linux-x64 --self-contained false -o "$OUT" -v q -nologo >/dev/null
  dotnet build samples/shop/app/Shop.csproj -c Release -o samples/shop/app/out -v q -nologo >/dev/null
  dotnet build samples/shop/app/Shop.csproj -c Release -v q -nologo >/dev/null
  dotnet build bench/startup/aspire/ShopAppHost.csproj -c Release -v q -nologo >/dev/null
fi
BERTH=("$OUT/berth")
APPHOST=$ROOT/bench/startup/aspire/bin/Release/net10.0/ShopAppHost
work=$(mktemp -d /tmp/berth-shop-bench.XXXXXX)
cp -r samples/shop/berth.yaml samples/shop/app "$work/"   # the spec and the built app, without the worktree's .berth
aspire_pid=
cleanup() {
  [ -n "$aspire_pid" ] && kill "$aspire_pid" 2>/dev/null && sleep 5
  (cd "$work" && timeout 60 "${BERTH[@]}" down >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 124' TERM

# How many of the 6 Shop processes whose command line contains $1 (and, given $2, run in that folder) answer on a port of their own.
ready_count() {
  python3 - "$1" "${2:-}" <<'PY'
import os, re, socket, subprocess, sys, urllib.request
needle, cwd = sys.argv[1], sys.argv[2]
listen = {}
for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
    m = re.search(r"127\.0\.0\.1:(\d+).*pid=(\d+)", line)
    if m: listen.setdefault(int(m.group(2)), []).append(int(m.group(1)))
ok = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit(): continue
    try: args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError: continue
    text = b" ".join(args).decode(errors="replace")
    if needle not in text or "dotnet run" in text or "--project" in text: continue
    try:
        if cwd and not os.readlink(f"/proc/{pid}/cwd").startswith(cwd): continue
    except OSError: continue
    role = next((r for r in ("frontend", "api", "worker", "db") if r.encode() in args), None)
    if role is None or not any(a.endswith((b"Shop.dll", b"/Shop")) for a in args): continue
    for port in listen.get(int(pid), []):
        try:
            if role == "db":
                socket.create_connection(("127.0.0.1", port), timeout=1).close(); ok += 1; break
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200: ok += 1; break
        except Exception: pass
print(ok)
PY
}
wait_ready() { # needle [cwd] -> 0 once 6 answer (BERTH_BENCH_READY_LIMIT seconds at most, default 300)
  local until=$(( $(date +%s) + ${BERTH_BENCH_READY_LIMIT:-300} ))
  while [ "$(date +%s)" -lt "$until" ]; do
    [ "$(ready_count "$1" "${2:-}")" -ge 6 ] && return 0
    sleep 0.05
  done
  echo "not all 6 ready within ${BERTH_BENCH_READY_LIMIT:-300} s ($1): the time below is a lower bound" >&2; return 1
}
# Resident memory (MiB) of the processes whose command line matches $1 (an extended regex), summed.
rss() { ps -eo rss=,args= | grep -E "$1" | grep -v grep | awk '{s+=$1} END {printf "%.0f", s/1024}'; }

now() { date +%s%N; }
berth_case() {
  local t0 t1
  rm -rf "$work/.berth"
  t0=$(now)
  # Berth's replicas run in pods (each its own network namespace, as root), whose ports the host's `ss` cannot see: Berth's
  # side is `berth up --wait` returning, i.e. every readiness probe (the same GET /healthz, the same TCP connect for db)
  # passed inside the pods, plus the CLI's 100 ms poll.
  (cd "$work" && timeout "${BERTH_BENCH_READY_LIMIT:-300}" "${BERTH[@]}" up --wait --no-build >/dev/null 2>&1) || echo "berth up --wait failed or timed out" >&2
  t1=$(now)
  if [ "${1:-}" = memory ]; then
    sleep 5
    echo "berth memory: control plane $(rss "berth __control-plane -f $work") MiB; with the 6 replica supervisors $(rss "berth __control-plane -f $work|perl .*$work/.berth") MiB; the 6 app processes $(rss "dotnet app/out/Shop.dll") MiB (any shop running here)" >&2
  fi
  (cd "$work" && timeout 60 "${BERTH[@]}" down >/dev/null 2>&1) || echo "berth down timed out" >&2
  echo $(( (t1 - t0) / 1000000 ))
}
aspire_case() {
  local t0 t1
  t0=$(now)
  ASPNETCORE_URLS=http://127.0.0.1:18888 ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://127.0.0.1:18889 ASPIRE_ALLOW_UNSECURED_TRANSPORT=true \
    DOTNET_ENVIRONMENT=Development "$APPHOST" >"$work/aspire.log" 2>&1 &
  aspire_pid=$!
  wait_ready "$ROOT/samples/shop/app/bin/Release" || true; t1=$(now)
  if [ "${1:-}" = memory ]; then
    sleep 5
    echo "aspire memory: app host (with its dashboard) $(rss "ShopAppHost") MiB; with DCP $(rss "ShopAppHost|tools/dcp ") MiB; with the 6 'dotnet run' launchers $(rss "ShopAppHost|tools/dcp |dotnet run --project $ROOT/samples/shop") MiB; the 6 app processes $(rss "samples/shop/app/bin/Release") MiB" >&2
  fi
  kill "$aspire_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do pgrep -f "tools/dcp |samples/shop/app/bin/Release" >/dev/null || break; sleep 0.1; done
  aspire_pid=
  echo $(( (t1 - t0) / 1000000 ))
}
# Each run starts on a settled machine: Aspire's processes (DCP, the dotnet run launchers, MSBuild nodes) keep a core busy for
# seconds after its AppHost is stopped, which the next run (Berth's or Aspire's) would otherwise pay for. Waits until the CPUs
# are under 15% busy over half a second, at most BERTH_BENCH_SETTLE seconds (default 30); prints how long that took.
settle() {
  python3 - "${BERTH_BENCH_SETTLE:-30}" <<'PY'
import sys, time
def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)
limit, t0 = float(sys.argv[1]), time.time()
while time.time() - t0 < limit:
    b0, a0 = busy(); time.sleep(0.5); b1, a1 = busy()
    if (b1 - b0) / max(1, a1 - a0) < 0.15: break
print(f"{time.time() - t0:.1f}")
PY
}
declare -A results
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r), dotnet $(dotnet --version)" >&2
for round in $(seq 1 "$RUNS"); do
  if [ $((round % 2)) = 1 ]; then order="berth aspire"; else order="aspire berth"; fi
  [ -n "${BERTH_BENCH_ONLY:-}" ] && order=$BERTH_BENCH_ONLY
  for who in $order; do
    waited=$(settle)
    load=$(cut -d' ' -f1 /proc/loadavg)
    mem=; [ "$round" = "$RUNS" ] && mem=memory
    r=$("${who}_case" $mem); results[$who]+="$r "
    echo "round $round $who: $r ms (load $load; waited $waited s for the CPUs to settle)" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
[ -n "${results[berth]:-}" ] && [ -n "${results[aspire]:-}" ] || { echo "one side only: berth ${results[berth]:-} aspire ${results[aspire]:-}"; exit 0; }
b=$(echo ${results[berth]} | median); a=$(echo ${results[aspire]} | median)
echo "berth runs (ms): ${results[berth]} median $b"
echo "aspire runs (ms): ${results[aspire]} median $a"
echo "berth is $(echo "scale=2; $a / $b" | bc)x Aspire's speed"
