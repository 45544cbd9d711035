#!/usr/bin/env bash
# Mesh throughput/latency against its peers, in one run on one machine, loopback only, bounded duration.
#   direct  : wrk straight at one upstream
#   nginx   : nginx as a round-robin reverse proxy (keepalive to upstreams)
#   haproxy : HAProxy as a round-robin reverse proxy (http-reuse always)
#   yarp    : plain YARP (MapReverseProxy, round-robin)
#   berth   : Berth's mesh listener with every resilience feature on, run by the data plane's own server code
#             (DataPlaneServer serving a saved route snapshot) with the data plane process's runtime settings
#   berth-bare: the same listener with retries, breakers, ejection and timeouts off (the cost of resilience)
#   berth-kestrel: the berth listener with Kestrel parsing every request (the path before the mesh's own HTTP/1.1 server)
#   berth-tpsched: the berth row with Kestrel's default pipe scheduling (queued to the thread pool, as before round 7)
#   berth-inline: the berth row with inline socket completions (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1; off by
#             default in the data plane, see docs/architecture.md), to show what they are worth
#   berth-inline-t1, berth-inline-t4: berth-inline with 1 or 4 socket engine threads (DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT;
#             with inline completions .NET makes one per core, each serving its own share of the sockets); run only
#             when named in TARGETS
#   berth-sockets: the berth row on Kestrel's socket transport and .NET's socket engine (BERTH_BENCH_EVENT_LOOPS=0), the
#             data plane's design before round 10, instead of the mesh's own event loops (MeshHostOptions.EventLoops, the
#             default since round 10); run only when named in TARGETS. berth-tpsched and the berth-inline rows also run on it.
#   floor   : a minimal C# proxy on nginx's design (bench/mesh/Berth.Mesh.Bench/Floor.cs: one epoll loop per core, raw
#             non-blocking sockets, no async, no resilience): what C# itself costs next to nginx; run only when named in TARGETS
#   kestrel : plain Kestrel answering the 6 bytes itself, no proxying (the floor of any Kestrel-based listener)
# Upstreams for every proxy: the same nginx serving a 6-byte body on two ports.
# Needs: nginx haproxy wrk (installed with apt-get when missing and running as root), the .NET SDK.
# Usage: bench/mesh/run.sh [duration=10s] [connections=64] [threads=2] [runs=1]
# TARGETS="nginx berth" measures only those rows (default: all of them); ratios need nginx (and haproxy, yarp, direct) in the list.
# With runs > 1 every target is measured once per round (targets interleaved, so load drift hits all of them alike).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
CONNS=${2:-64}
THREADS=${3:-2}
RUNS=${4:-1}
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench/mesh: installing nginx haproxy wrk…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy wrk >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy wrk >/dev/null; }
  fi
fi
for tool in nginx haproxy wrk dotnet; do
  command -v "$tool" >/dev/null || { echo "bench/mesh: '$tool' not found; install it (apt-get install -y nginx haproxy wrk)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench/mesh: nothing listening on 127.0.0.1:$1" >&2; exit 1
}

U1=$(free_port); U2=$(free_port); NGX=$(free_port); HAP=$(free_port); YARP=$(free_port); BERTH=$(free_port); BARE=$(free_port); KEST=$(free_port); BKEST=$(free_port); BTP=$(free_port); BINL=$(free_port); BIN1=$(free_port); BIN4=$(free_port); FLOOR=$(free_port); BLOOP=$(free_port)

echo "building the bench proxies (Release)…" >&2
dotnet build -c Release -v q --nologo bench/mesh/Berth.Mesh.Bench >/dev/null
BENCH_DLL=bench/mesh/Berth.Mesh.Bench/bin/Release/net10.0/Berth.Mesh.Bench.dll
# The data plane process's runtime environment (DataPlaneRuntime.Environment), so the berth rows run as `berth up` runs them.
DATA_PLANE_ENV=$(dotnet "$BENCH_DLL" data-plane-env)

cat >"$work/upstreams.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/upstreams.pid;
error_log $work/upstreams.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$U1; location / { return 200 "hello\n"; } }
  server { listen 127.0.0.1:$U2; location / { return 200 "hello\n"; } }
}
CONF
cat >"$work/proxy.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/proxy.pid;
error_log $work/proxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$U1; server 127.0.0.1:$U2; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAP
  default_backend app
backend app
  balance roundrobin
  server u1 127.0.0.1:$U1
  server u2 127.0.0.1:$U2
CONF

declare -A RPS P50 P99 CPU PID
nginx -c "$work/upstreams.conf" -p "$work" & pids+=($!); PID[direct]=$!
nginx -c "$work/proxy.conf" -p "$work" & pids+=($!); PID[nginx]=$!
haproxy -f "$work/haproxy.cfg" -q & pids+=($!); PID[haproxy]=$!
DOTNET_gcServer=1 dotnet "$BENCH_DLL" yarp --port "$YARP" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/yarp.log" 2>&1 & pids+=($!); PID[yarp]=$!
env $DATA_PLANE_ENV dotnet "$BENCH_DLL" berth --port "$BERTH" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/berth.log" 2>&1 & pids+=($!); PID[berth]=$!
env $DATA_PLANE_ENV dotnet "$BENCH_DLL" berth-bare --port "$BARE" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/bare.log" 2>&1 & pids+=($!); PID[berth-bare]=$!
env $DATA_PLANE_ENV dotnet "$BENCH_DLL" berth-kestrel --port "$BKEST" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/bkest.log" 2>&1 & pids+=($!); PID[berth-kestrel]=$!
env $DATA_PLANE_ENV BERTH_BENCH_EVENT_LOOPS=0 BERTH_BENCH_KESTREL_SCHEDULING=1 dotnet "$BENCH_DLL" berth --port "$BTP" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/btp.log" 2>&1 & pids+=($!); PID[berth-tpsched]=$!
env $DATA_PLANE_ENV BERTH_BENCH_EVENT_LOOPS=0 DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 dotnet "$BENCH_DLL" berth --port "$BINL" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/binl.log" 2>&1 & pids+=($!); PID[berth-inline]=$!
DOTNET_gcServer=1 dotnet "$BENCH_DLL" kestrel --port "$KEST" --upstreams "127.0.0.1:$U1" >"$work/kestrel.log" 2>&1 & pids+=($!); PID[kestrel]=$!
TARGETS=${TARGETS:-direct nginx haproxy yarp berth berth-bare berth-kestrel kestrel berth-tpsched berth-inline}
selected() { [[ " $TARGETS " == *" $1 "* ]]; }
inline_row() { # name port thread-count: berth-inline with that many socket engine threads, started only when selected
  selected "$1" || return 0
  env $DATA_PLANE_ENV BERTH_BENCH_EVENT_LOOPS=0 DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT="$3" \
    dotnet "$BENCH_DLL" berth --port "$2" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/$1.log" 2>&1 & pids+=($!); PID[$1]=$!
  EXTRA+=("$2")
}
EXTRA=()
if selected berth-sockets; then
  env $DATA_PLANE_ENV BERTH_BENCH_EVENT_LOOPS=0 dotnet "$BENCH_DLL" berth --port "$BLOOP" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/bsock.log" 2>&1 & pids+=($!); PID[berth-sockets]=$!
  EXTRA+=("$BLOOP")
fi
if selected floor; then
  dotnet "$BENCH_DLL" floor --port "$FLOOR" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/floor.log" 2>&1 & pids+=($!); PID[floor]=$!
  EXTRA+=("$FLOOR")
fi
inline_row berth-inline-t1 "$BIN1" 1
inline_row berth-inline-t4 "$BIN4" 4
for p in $U1 $U2 $NGX $HAP $YARP $BERTH $BARE $KEST $BKEST $BTP $BINL "${EXTRA[@]}"; do wait_port "$p"; done
curl -fsS "http://127.0.0.1:$BERTH/" >/dev/null && curl -fsS "http://127.0.0.1:$YARP/" >/dev/null

# CPU time per request is the steadier number on a busy shared machine: throughput there measures the scheduler too.
TCK=$(getconf CLK_TCK)
cpu_ticks() { # a process and its direct children (nginx workers), utime+stime in clock ticks
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'; }
measure() {
  local name=$1 port=$2 pid=${PID[$1]}
  wrk -t"$THREADS" -c"$CONNS" -d5s "http://127.0.0.1:$port/" >/dev/null   # warm-up (tiered JIT reaches its final code, pools fill)
  local before; before=$(cpu_ticks "$pid")
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/")
  local after; after=$(cpu_ticks "$pid")
  local count; count=$(echo "$out" | awk '/requests in/ {print $1}')
  CPU[$name]=$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$count" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  echo "$out" | grep -qE "Non-2xx|Socket errors" && { echo "== $name had errors:" >&2; echo "$out" | grep -E "Non-2xx|Socket errors" >&2; }
  RPS[$name]=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  P50[$name]=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
  P99[$name]=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  echo "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms, ${CPU[$name]} µs CPU/request" >&2
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a/b }'; }
for run in $(seq 1 "$RUNS"); do
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "run $run/$RUNS, load before: $load_before" >&2
  for target in direct:$U1 nginx:$NGX haproxy:$HAP yarp:$YARP berth:$BERTH berth-bare:$BARE berth-kestrel:$BKEST kestrel:$KEST berth-tpsched:$BTP berth-inline:$BINL berth-inline-t1:$BIN1 berth-inline-t4:$BIN4 berth-sockets:$BLOOP floor:$FLOOR; do
    selected "${target%%:*}" || continue
    measure "${target%%:*}" "${target##*:}"
  done
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  echo
  echo "Run $run of $RUNS: wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average $load_before before / $load_after after"
  echo
  echo "| target | req/s | p50 ms | p99 ms | CPU µs/req | req/s vs nginx | vs HAProxy | vs YARP | vs direct | p99 vs nginx | p99 vs YARP |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in direct nginx haproxy yarp berth berth-bare berth-kestrel kestrel berth-tpsched berth-inline berth-inline-t1 berth-inline-t4 berth-sockets floor; do
    selected "$n" || continue
    echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | ${CPU[$n]} | $(ratio "${RPS[$n]}" "${RPS[nginx]:-0}") | $(ratio "${RPS[$n]}" "${RPS[haproxy]:-0}") | $(ratio "${RPS[$n]}" "${RPS[yarp]:-0}") | $(ratio "${RPS[$n]}" "${RPS[direct]:-0}") | $(ratio "${P99[$n]}" "${P99[nginx]:-0}") | $(ratio "${P99[$n]}" "${P99[yarp]:-0}") |"
  done
done
echo
echo "CPU/request: the proxy process(es) only (for direct: the upstream nginx; for kestrel: Kestrel answering itself)."
