#!/usr/bin/env bash
# The mesh as users run it: `berth up` of two nginx replicas (process driver, host network) behind Berth's stable port,
# served by the data plane process, next to nginx proxying the same two replicas (keepalive to them), in one run.
# Loopback only; each measurement is bounded by wrk's duration.
#   berth : wrk -> Berth's stable port (data plane process, default resilience policy) -> replica 1|2
#   nginx : wrk -> nginx (2 workers, round-robin, keepalive 128) -> the same replica 1|2
#   berth-bench: wrk -> bench/mesh's berth process (what run.sh's berth row runs: the data plane's server code and runtime
#           settings, server GC, no control plane, round-robin) -> the same replica 1|2. Next to the berth row it tells the
#           data plane process's own cost (its GC mode, control plane channel, policy) from that of the machine around it.
#   berth-alt: a second `berth up` of the same app (its own two replicas), run with $ALT_ENV in the environment of
#           `berth up` (default BERTH_MESH_EVENT_LOOPS=0: the data plane on Kestrel's socket transport, its design before
#           round 10), so its data plane gets them; ALT_ENV= (empty) leaves the row out. Next to the berth row it tells what
#           a setting is worth as users run it.
#   direct: wrk -> replica 1 (the floor)
# CPU per request: the data plane process (berth, berth-alt), the bench process (berth-bench), the nginx proxy master+workers (nginx)
# or the replica (direct); context switches per request of the same processes (all their threads), and how long their
# threads waited for a core while runnable, per request (/proc/PID/task/*/schedstat: the machine's share of the tail).
# Needs: nginx wrk python3 curl, the .NET SDK.
# Usage: bench/mesh/up.sh [duration=10s] [connections=64] [threads=2] [runs=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
CONNS=${2:-64}
THREADS=${3:-2}
RUNS=${4:-3}
ALT_ENV=${ALT_ENV-BERTH_MESH_EVENT_LOOPS=0}
for tool in nginx wrk python3 curl dotnet; do
  command -v "$tool" >/dev/null || { echo "bench/mesh/up.sh: '$tool' not found; install it (apt-get install -y nginx wrk python3 curl)" >&2; exit 2; }
done
echo "building the berth CLI and the bench proxies (Release)…" >&2
dotnet build src/Berth.Cli -c Release -v q -nologo >/dev/null
dotnet build bench/mesh/Berth.Mesh.Bench -c Release -v q -nologo >/dev/null
BENCH_DLL=bench/mesh/Berth.Mesh.Bench/bin/Release/net10.0/Berth.Mesh.Bench.dll
DATA_PLANE_ENV=$(dotnet "$BENCH_DLL" data-plane-env)
BERTH=(dotnet "$PWD/src/Berth.Cli/bin/Release/net10.0/berth.dll")
NGINX=$(command -v nginx)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
work=$(mktemp -d /tmp/berth-mesh-up.XXXXXX)
mkdir "$work/alt"
STABLE=$(free_port); PROXY=$(free_port); BENCHPORT=$(free_port); ALTPORT=$(free_port)
proxy_pid=
bench_pid=
cleanup() {
  [ -n "$proxy_pid" ] && { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
  [ -n "$bench_pid" ] && { kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; }
  ( cd "$work" && "${BERTH[@]}" down >/dev/null 2>&1 ) || true
  [ -n "$ALT_ENV" ] && { ( cd "$work/alt" && "${BERTH[@]}" down >/dev/null 2>&1 ) || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# A replica: nginx answering "hello\n" on its own $PORT (one worker, as a small service would run).
cat >"$work/replica.sh" <<SH
#!/bin/sh
dir=\$(mktemp -d)
cat >"\$dir/nginx.conf" <<CONF
worker_processes 1; daemon off; pid \$dir/nginx.pid; error_log \$dir/error.log warn;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:\$PORT; location / { return 200 "hello\\\\n"; } } }
CONF
exec $NGINX -c "\$dir/nginx.conf" -p "\$dir"
SH
chmod +x "$work/replica.sh"
cat >"$work/berth.yaml" <<YAML
name: meshup
services:
  web:
    run: [sh, $work/replica.sh]
    replicas: 2
    endpoints:
      http: $STABLE
    probes:
      readiness: {http: /, period: 1s}
    stop_grace_period: 1s
YAML

ready_ports() { # app folder -> "port1 port2" of its two Ready web replicas
  local dir=$1 url token ports=
  url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$dir/.berth/api.json")
  token=$(cat "$dir/.berth/api-token")
  for _ in $(seq 1 1200); do
    ports=$(curl -s -H "Authorization: Bearer $token" "$url/v1/replicas" | python3 -c '
import json, sys
ready = [r for r in json.load(sys.stdin) if r["service"] == "web" and r["phase"] == "ready"]
print(" ".join(str(list(r["ports"].values())[0]) for r in ready) if len(ready) == 2 else "")')
    [ -n "$ports" ] && break
    sleep 0.1
  done
  [ -n "$ports" ] || { echo "bench/mesh/up.sh: the two replicas in $dir did not become Ready" >&2; exit 1; }
  echo "$ports"
}
( cd "$work" && "${BERTH[@]}" up -d >/dev/null )
ports=$(ready_ports "$work")
read -r R1 R2 <<<"$ports"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$work/.berth/api.json")
token=$(cat "$work/.berth/api-token")
if [ -n "$ALT_ENV" ]; then
  sed -e "s/^name: meshup$/name: meshupalt/" -e "s/http: $STABLE\$/http: $ALTPORT/" "$work/berth.yaml" >"$work/alt/berth.yaml"
  ( cd "$work/alt" && env $ALT_ENV "${BERTH[@]}" up -d >/dev/null )
  ready_ports "$work/alt" >/dev/null
  ALTDP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$work/alt/.berth/data-plane.json")
  for v in $ALT_ENV; do
    tr '\0' '\n' <"/proc/$ALTDP/environ" | grep -qx "$v" || { echo "bench/mesh/up.sh: the berth-alt data plane ($ALTDP) runs without $v" >&2; exit 1; }
  done
fi
DP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$work/.berth/data-plane.json")

cat >"$work/proxy.conf" <<CONF
worker_processes 2; daemon off; pid $work/proxy.pid; error_log $work/proxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$R1; server 127.0.0.1:$R2; keepalive 128; }
  server { listen 127.0.0.1:$PROXY; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
nginx -c "$work/proxy.conf" -p "$work" & proxy_pid=$!
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY") 2>/dev/null && break; sleep 0.05; done
env $DATA_PLANE_ENV dotnet "$BENCH_DLL" berth --port "$BENCHPORT" --upstreams "127.0.0.1:$R1,127.0.0.1:$R2" >"$work/bench.log" 2>&1 & bench_pid=$!
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$BENCHPORT/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$STABLE/" >/dev/null && curl -fsS "http://127.0.0.1:$PROXY/" >/dev/null && curl -fsS "http://127.0.0.1:$BENCHPORT/" >/dev/null
R1PID=$(curl -s -H "Authorization: Bearer $token" "$url/v1/replicas" | python3 -c '
import json, sys
print([r["pid"] for r in json.load(sys.stdin) if r["service"] == "web" and r["phase"] == "ready"][0])')

TCK=$(getconf CLK_TCK)
cpu_ticks() { # a process and its direct children, utime+stime in clock ticks
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
ctx_switches() { # a process and its direct children, voluntary + involuntary, every thread
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')))
  done
  echo "$total"
}
run_queue_ns() { # a process and its direct children, time their threads waited for a core while runnable (schedstat)
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {printf "%.0f", s}')))
  done
  echo "$total"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'; }
declare -A RPS P99 CPU CTX RQ
measure() { # name port pid
  local name=$1 port=$2 pid=$3
  wrk -t"$THREADS" -c"$CONNS" -d5s "http://127.0.0.1:$port/" >/dev/null   # warm-up
  local before; before=$(cpu_ticks "$pid")
  local ctx_before; ctx_before=$(ctx_switches "$pid")
  local rq_before; rq_before=$(run_queue_ns "$pid")
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/")
  local after; after=$(cpu_ticks "$pid")
  local ctx_after; ctx_after=$(ctx_switches "$pid")
  local rq_after; rq_after=$(run_queue_ns "$pid")
  local count; count=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | grep -qE "Non-2xx|Socket errors" && { echo "== $name had errors:" >&2; echo "$out" | grep -E "Non-2xx|Socket errors" >&2; }
  RPS[$name]=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  P99[$name]=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  CPU[$name]=$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$count" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  CTX[$name]=$(awk -v c=$((ctx_after - ctx_before)) -v n="$count" 'BEGIN { printf "%.2f", c / n }')
  RQ[$name]=$(awk -v w=$((rq_after - rq_before)) -v n="$count" 'BEGIN { printf "%.1f", w / 1000 / n }')
  echo "$name: ${RPS[$name]} req/s, p99 ${P99[$name]} ms, ${CPU[$name]} µs CPU/request, ${CTX[$name]} context switches/request, ${RQ[$name]} µs run-queue wait/request" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
for run in $(seq 1 "$RUNS"); do
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  measure nginx "$PROXY" "$proxy_pid"
  measure berth "$STABLE" "$DP"
  measure berth-bench "$BENCHPORT" "$bench_pid"
  [ -n "$ALT_ENV" ] && measure berth-alt "$ALTPORT" "$ALTDP"
  measure direct "$R1" "$R1PID"
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  echo
  echo "Run $run of $RUNS: berth up, 2 nginx replicas; wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average $load_before before / $load_after after"
  echo
  echo "| target | req/s | p99 ms | CPU µs/req | context switches/req | run-queue wait µs/req | req/s vs nginx | p99 vs nginx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for n in nginx berth berth-bench berth-alt direct; do
    [ -n "${RPS[$n]:-}" ] || continue
    echo "| $n | ${RPS[$n]} | ${P99[$n]} | ${CPU[$n]} | ${CTX[$n]} | ${RQ[$n]} | $(ratio "${RPS[$n]}" "${RPS[nginx]}") | $(ratio "${P99[$n]}" "${P99[nginx]}") |"
  done
done
echo
echo "CPU/request: berth = the data plane process; berth-bench = bench/mesh's berth process on the same replicas; berth-alt = the data plane of the second app, run with ${ALT_ENV:-nothing}; nginx = the proxy's master and workers; direct = replica 1's nginx."
