#!/usr/bin/env bash
# The issue's edit loop on the shop sample: from saving app/Program.cs to the frontend's new answer through the mesh's
# stable port, with the frontend under Hot Reload (samples/shop/berth.hot-reload.yaml) and 'berth watch' running.
# Usage: bench/devloop/shop.sh [ROUNDS]   (default 3 edits; the first includes Hot Reload's warm-up). BERTH=path/to/berth.
# The copy's stable ports are free ones (the sample's 7100-7400 may be taken on a shared machine).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds="${1:-3}"
berth="${BERTH:-$root/berth}"
work=$(mktemp -d)
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
watch_pid=""
files=(-f berth.yaml -f berth.hot-reload.yaml)
cleanup() {
  [[ -n "$watch_pid" ]] && kill -TERM "$watch_pid" 2>/dev/null
  (cd "$work/shop" 2>/dev/null && "$berth" down -f berth.yaml >/dev/null 2>&1)
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

mkdir -p "$work/shop"
(cd "$root/samples/shop" && tar --exclude=bin --exclude=obj --exclude=out --exclude=.berth -cf - .) | tar -xf - -C "$work/shop"
front=$(free_port)
sed -i "s/port: 7100/port: $front/; s/http: 7200/http: $(free_port)/; s/http: 7300/http: $(free_port)/; s/port: 7400/port: $(free_port)/" "$work/shop/berth.yaml"
echo "machine: $(nproc) cores, load $(load), dotnet $(dotnet --version), $rounds edits"
start=$(now)
(cd "$work/shop" && "$berth" up --wait --wait-timeout 15m "${files[@]}" >/dev/null 2>"$work/up.log") || { tail -30 "$work/up.log"; exit 1; }
echo "berth up --wait (build + every replica Ready, the frontend under dotnet watch): $(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
(cd "$work/shop" && exec "$berth" watch "${files[@]}" 2>"$work/watch.log") &
watch_pid=$!
until grep -q "watching " "$work/watch.log" 2>/dev/null; do sleep 0.2; done
for ((i = 1; i <= rounds; i++)); do
  start=$(now)
  sed -i "s/\$\"shop frontend[^(]*(/\$\"shop frontend edit$i (/" "$work/shop/app/Program.cs"
  deadline=$(( $(date +%s) + 300 ))
  until curl -s --max-time 2 "http://127.0.0.1:$front/" | grep -q "shop frontend edit$i "; do
    (( $(date +%s) > deadline )) && { echo "timeout"; tail -20 "$work/watch.log"; exit 1; }
    sleep 0.05
  done
  echo "shop frontend  edit $i: $(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }') s  (load $(load))"
  sleep 2
done
grep -E "changes applied|replicas are rolled|rolling out" "$work/watch.log" | sed 's/^/  berth watch said: /'
