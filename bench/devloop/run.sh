#!/usr/bin/env bash
# The edit loop, measured: from saving Program.cs of a small ASP.NET Core service to its new answer served on loopback,
# with Berth (`berth watch`: the develop.watch rebuild rule -> dotnet build -> rolling restart, answered through the mesh's
# stable port) and with `dotnet watch run` (the peer: Hot Reload where the edit allows it) on copies of the same app, in
# the same run. docs/benchmarks.md has the numbers.
# Usage: bench/devloop/run.sh [ROUNDS]   (default 3 edits each); BERTH=path/to/berth to use another build;
#        CONFIG=Release builds both in Release (dotnet watch then restarts instead of Hot Reload: 'Optimize' is on). Default Debug.
#        HOT_RELOAD=1: Berth's service has develop.hot_reload (its replica runs under dotnet watch; berth watch reports the
#        verdict and rolls the replica only for an edit Hot Reload cannot apply) instead of the rebuild + rolling restart.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds="${1:-3}"
berth="${BERTH:-$root/berth}"
config="${CONFIG:-Debug}"
hot="${HOT_RELOAD:-0}"
work=$(mktemp -d)
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_berth=$(free_port); port_watch=$(free_port)
watch_pid=""; dotnet_watch_pid=""
cleanup() {
  [[ -n "$watch_pid" ]] && kill -TERM "$watch_pid" 2>/dev/null
  # dotnet watch was started as the leader of its own process group: end the group (dotnet watch, the build, the app).
  [[ -n "$dotnet_watch_pid" ]] && kill -TERM -- "-$dotnet_watch_pid" 2>/dev/null
  (cd "$work/berth-app" 2>/dev/null && "$berth" down >/dev/null 2>&1)
  sleep 1; [[ -n "$dotnet_watch_pid" ]] && kill -KILL -- "-$dotnet_watch_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
body() { curl -s --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null; }
# Waits (at most 300 s) until port $1 answers $2; prints the seconds since $3.
until_body() {
  local deadline=$(( $(date +%s) + 300 ))
  while [[ "$(body "$1")" != "$2" ]]; do
    (( $(date +%s) > deadline )) && { echo "timeout"; return 1; }
    sleep 0.05
  done
  awk -v a="$3" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
edit() { sed -i "s/\"v$2\"/\"v$3\"/" "$1/Program.cs"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

for copy in berth-app watch-app; do
  cp -r "$(dirname "$0")/app" "$work/$copy"
  (cd "$work/$copy" && dotnet build -c "$config" -o out -v q >/dev/null) || { echo "first build of $copy failed"; exit 1; }
done
cat > "$work/berth-app/berth.yaml" <<YAML
name: devloop-bench
services:
  web:
    build:
      command: [dotnet, build, -c, $config, -o, out, --no-restore, -v, q]
    run: [dotnet, out/Devloop.dll]
    endpoints:
      http: $port_berth
    probes:
      readiness: {http: /, period: 200ms}
    update: {max_surge: 1, max_unavailable: 0}
    stop_grace_period: 2s
    develop:
      hot_reload: $([[ "$hot" == 1 ]] && echo true || echo false)
      watch:
        - {action: rebuild, path: ., ignore: [bin/, obj/, out/]}
YAML

echo "machine: $(nproc) cores, load $(load), dotnet $(dotnet --version), $config, $rounds edits each, berth hot_reload=$hot"
up_start=$(now)
(cd "$work/berth-app" && "$berth" up --wait --wait-timeout 10m >/dev/null 2>"$work/up.log") || { cat "$work/up.log"; exit 1; }
echo "berth up --wait: $(awk -v a="$up_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
(cd "$work/berth-app" && exec "$berth" watch 2>"$work/watch.log") &
watch_pid=$!
until grep -q "watching " "$work/watch.log" 2>/dev/null; do sleep 0.2; done
for ((i = 1; i <= rounds; i++)); do
  start=$(now); edit "$work/berth-app" "$i" "$((i + 1))"
  took=$(until_body "$port_berth" "v$((i + 1))" "$start")
  echo "berth watch    edit $i: $took s  ($(grep -oE 'built web in [0-9.]+s|changes applied in [0-9]+ms|replicas are rolled' "$work/watch.log" | tail -1); load $(load))"
  # the next edit after the rollout has settled, as a developer reads the answer before the next save
  (cd "$work/berth-app" && "$berth" rollout status web --timeout 5m >/dev/null 2>&1)
done

(cd "$work/watch-app" && ASPNETCORE_URLS="http://127.0.0.1:$port_watch" exec setsid dotnet watch run --non-interactive -c "$config" >"$work/dotnet-watch.log" 2>&1) &
dotnet_watch_pid=$!
until_body "$port_watch" "v1" "$(now)" >/dev/null || { tail -20 "$work/dotnet-watch.log"; exit 1; }
for ((i = 1; i <= rounds; i++)); do
  start=$(now); edit "$work/watch-app" "$i" "$((i + 1))"
  echo "dotnet watch   edit $i: $(until_body "$port_watch" "v$((i + 1))" "$start") s  (load $(load))"
  sleep 1
done
grep -iE "hot reload|restart|rebuild|changes" "$work/dotnet-watch.log" | sort | uniq -c | head -5 | sed 's/^/  dotnet watch said: /'
