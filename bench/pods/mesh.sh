#!/usr/bin/env bash
# The mesh into pods against host mode and nginx, in one run, loopback only, bounded duration (issue #13's benchmark):
#   nginx      : nginx as a round-robin reverse proxy to two upstreams on the host (keepalive)
#   berth-host : Berth's mesh listener (every resilience feature on) to the same two host upstreams
#   berth-pods : the same listener to two upstreams each in its own pod (unshare --net, loopback only, both on port 8080),
#                reached through sockets the mesh makes inside each pod (setns) — what `network: isolated` does
# Upstreams: nginx serving a 6-byte body (one worker each). Then the data plane's memory with 100 pods x 5 services.
# Needs root (unshare --net, setns), nginx, wrk, perl, the .NET SDK.
# Usage: bench/pods/mesh.sh [duration=10s] [connections=64] [threads=2] [runs=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}; CONNS=${2:-64}; THREADS=${3:-2}; RUNS=${4:-1}
for tool in nginx wrk unshare perl dotnet; do
  command -v "$tool" >/dev/null || { echo "bench/pods: '$tool' not found (apt-get install -y nginx wrk util-linux perl)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench/pods: needs root (pods are made with unshare --net and entered with setns)" >&2; exit 2; }

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "bench/pods: nothing on 127.0.0.1:$1" >&2; exit 1; }
# Brings lo up in the new namespace (the ioctls Berth's supervisor uses), then execs the command.
LO_UP='socket(my $s, 2, 2, 0) or die $!; my $r = pack("a16 x24", "lo"); ioctl($s, 0x8913, $r) or die $!; ioctl($s, 0x8914, pack("a16 s x22", "lo", unpack("x16 s", $r) | 1)) or die $!; exec { $ARGV[0] } @ARGV or die $!;'

U1=$(free_port); U2=$(free_port); NGX=$(free_port); HOSTP=$(free_port); PODP=$(free_port)
dotnet build -c Release -v q --nologo bench/mesh/Berth.Mesh.Bench >/dev/null
DLL=bench/mesh/Berth.Mesh.Bench/bin/Release/net10.0/Berth.Mesh.Bench.dll
upstream_conf() { # name port
  cat >"$work/$1.conf" <<CONF
worker_processes 1; daemon off; pid $work/$1.pid; error_log $work/$1.err warn;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$2; location / { return 200 "hello\n"; } } }
CONF
}
upstream_conf u1 "$U1"; upstream_conf u2 "$U2"; upstream_conf p1 8080; upstream_conf p2 8080
cat >"$work/proxy.conf" <<CONF
worker_processes 2; daemon off; pid $work/proxy.pid; error_log $work/proxy.err warn;
events { worker_connections 4096; }
http { access_log off; upstream app { server 127.0.0.1:$U1; server 127.0.0.1:$U2; keepalive 128; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
declare -A PID RPS P50 P99
nginx -c "$work/u1.conf" -p "$work" & pids+=($!)
nginx -c "$work/u2.conf" -p "$work" & pids+=($!)
unshare --net -- perl -e "$LO_UP" nginx -c "$work/p1.conf" -p "$work" & pids+=($!); POD1=$!
unshare --net -- perl -e "$LO_UP" nginx -c "$work/p2.conf" -p "$work" & pids+=($!); POD2=$!
nginx -c "$work/proxy.conf" -p "$work" & pids+=($!); PID[nginx]=$!
DOTNET_gcServer=1 dotnet "$DLL" berth --port "$HOSTP" --upstreams "127.0.0.1:$U1,127.0.0.1:$U2" >"$work/host.log" 2>&1 & pids+=($!); PID[berth-host]=$!
sleep 1   # the pods' namespaces exist once unshare has exec'd perl
DOTNET_gcServer=1 dotnet "$DLL" berth --port "$PODP" --upstreams "127.0.0.1:8080,127.0.0.1:8080" --pods "$POD1,$POD2" >"$work/pods.log" 2>&1 & pids+=($!); PID[berth-pods]=$!
for p in $U1 $U2 $NGX $HOSTP $PODP; do wait_port "$p"; done
curl -fsS "http://127.0.0.1:$PODP/" >/dev/null || { echo "bench/pods: the mesh does not reach the pods" >&2; cat "$work/pods.log" >&2; exit 1; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'; }
measure() {
  wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$2/" >/dev/null
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$2/")
  echo "$out" | grep -qE "Non-2xx|Socket errors" && { echo "== $1 had errors:" >&2; echo "$out" | grep -E "Non-2xx|Socket errors" >&2; }
  RPS[$1]=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  P50[$1]=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')"); P99[$1]=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  echo "$1: ${RPS[$1]} req/s, p50 ${P50[$1]} ms, p99 ${P99[$1]} ms" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
for run in $(seq 1 "$RUNS"); do
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  for t in nginx:$NGX berth-host:$HOSTP berth-pods:$PODP; do measure "${t%%:*}" "${t##*:}"; done
  after=$(cut -d' ' -f1-3 /proc/loadavg)
  echo; echo "Run $run of $RUNS: wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average $before before / $after after"; echo
  echo "| target | req/s | p50 ms | p99 ms | req/s vs berth-host | req/s vs nginx | p99 vs berth-host |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for n in nginx berth-host berth-pods; do
    echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | $(ratio "${RPS[$n]}" "${RPS[berth-host]}") | $(ratio "${RPS[$n]}" "${RPS[nginx]}") | $(ratio "${P99[$n]}" "${P99[berth-host]}") |"
  done
done
echo; echo "Data-plane memory, load average $(cut -d' ' -f1-3 /proc/loadavg):"
dotnet "$DLL" pod-memory --pods-count 100 --services 5
