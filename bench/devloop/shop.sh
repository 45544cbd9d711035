#!/usr/bin/env bash
# The issue's edit loop on the shop sample, against its peer in the same run: from saving app/Program.cs to the frontend's
# new answer,
#   berth:         through the mesh's stable port, the frontend under Hot Reload (samples/shop/berth.hot-reload.yaml) and
#                  'berth watch' running (which also rebuilds api, worker and db, once, and rolls them: same file);
#   dotnet watch:  'dotnet watch run -- frontend' on the same app (a second copy, so each sees only its own edits) on its own
#                  port, as a developer runs it without Berth; its frontend calls Berth's api (stable port) for the orders.
# Rounds alternate (berth, then dotnet watch); a berth round ends once its api, worker and db rollouts are done, so the
# next round does not pay for them. The first round of each includes Hot Reload's warm-up; the medians leave it out.
# The peer uses dotnet watch's polling file watcher, as Berth's hot-reload replicas do (docs/spec.md, "Hot Reload"): the
# same watcher on both sides, and no inotify instance to run out of (128 per user by default; on a shared machine the
# peer's dotnet watch died with "The configured user limit (128) on the number of inotify instances has been reached").
# PEER_POLLING=0 runs it with inotify, as dotnet watch does by default.
# Usage: bench/devloop/shop.sh [ROUNDS]   (default 5). BERTH=path/to/berth.
# The copy's stable ports are free ones (the sample's 7100-7400 may be taken on a shared machine).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds="${1:-5}"
berth="${BERTH:-$root/berth}"
work=$(mktemp -d)
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
watch_pid=""
peer_pid=""
files=(-f berth.yaml -f berth.hot-reload.yaml)
cleanup() {
  [[ -n "$watch_pid" ]] && kill -TERM "$watch_pid" 2>/dev/null
  # The peer leads a session of its own (setsid): dotnet watch and the app it runs.
  [[ -n "$peer_pid" ]] && kill -TERM -- "-$peer_pid" 2>/dev/null
  (cd "$work/shop" 2>/dev/null && "$berth" down -f berth.yaml >/dev/null 2>&1)
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# Waits (≤ 300 s) until GET $1 answers a body containing $2; prints the seconds since $3, or "timeout".
wait_answer() {
  local deadline=$(( $(date +%s) + 300 ))
  until curl -s --max-time 2 "$1" | grep -qF "$2"; do
    (( $(date +%s) > deadline )) && { echo "timeout"; return 1; }
    sleep 0.05
  done
  since "$3"
}

mkdir -p "$work/shop"
(cd "$root/samples/shop" && tar --exclude=bin --exclude=obj --exclude=out --exclude=.berth -cf - .) | tar -xf - -C "$work/shop"
cp -r "$work/shop" "$work/peer"
front=$(free_port) api=$(free_port) peer=$(free_port)
sed -i "s/port: 7100/port: $front/; s/http: 7200/http: $api/; s/http: 7300/http: $(free_port)/; s/port: 7400/port: $(free_port)/" "$work/shop/berth.yaml"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), dotnet $(dotnet --version), $rounds rounds each"
start=$(now)
(cd "$work/shop" && "$berth" up --wait --wait-timeout 15m "${files[@]}" >/dev/null 2>"$work/up.log") || { tail -30 "$work/up.log"; exit 1; }
echo "berth up --wait (build + every replica Ready, the frontend under dotnet watch): $(since "$start") s"
(cd "$work/shop" && exec "$berth" watch "${files[@]}" 2>"$work/watch.log") &
watch_pid=$!
until grep -q "watching " "$work/watch.log" 2>/dev/null; do sleep 0.2; done

start=$(now)
polling=$([[ "${PEER_POLLING:-1}" == 0 ]] && echo 0 || echo 1)
echo "peer: dotnet watch with DOTNET_USE_POLLING_FILE_WATCHER=$polling"
(cd "$work/peer" && PORT=$peer services__api__http__0="http://127.0.0.1:$api" DOTNET_WATCH_SUPPRESS_LAUNCH_BROWSER=1 DOTNET_USE_POLLING_FILE_WATCHER=$polling \
  exec setsid dotnet watch --project app/Shop.csproj run --no-launch-profile -- frontend >"$work/peer.log" 2>&1) &
peer_pid=$!
wait_answer "http://127.0.0.1:$peer/" "shop frontend (" "$start" >/dev/null || { echo "dotnet watch (peer) never answered"; tail -30 "$work/peer.log"; exit 1; }
echo "dotnet watch run (peer: build + first answer): $(since "$start") s"

berth_times=() peer_times=() table=()
for ((i = 1; i <= rounds; i++)); do
  applied=$(grep -c "^berth: applied .* as revision " "$work/watch.log")
  l1=$(load) start=$(now)
  sed -i "s/\$\"shop frontend[^(]*(/\$\"shop frontend edit$i (/" "$work/shop/app/Program.cs"
  b=$(wait_answer "http://127.0.0.1:$front/" "shop frontend edit$i " "$start") || { echo "berth round $i: timeout"; tail -20 "$work/watch.log"; exit 1; }
  # The same save rebuilds api, worker and db (one build) and rolls them: let that finish before the next round.
  deadline=$(( $(date +%s) + 600 ))
  until (( $(grep -c "^berth: applied .* as revision " "$work/watch.log") > applied )) || (( $(date +%s) > deadline )); do sleep 0.5; done
  for s in api worker db; do (cd "$work/shop" && "$berth" rollout status "$s" --timeout 5m -f berth.yaml >/dev/null 2>&1); done

  l2=$(load) start=$(now)
  sed -i "s/\$\"shop frontend[^(]*(/\$\"shop frontend edit$i (/" "$work/peer/app/Program.cs"
  p=$(wait_answer "http://127.0.0.1:$peer/" "shop frontend edit$i " "$start") || { echo "dotnet watch round $i: timeout"; tail -20 "$work/peer.log"; exit 1; }
  berth_times+=("$b") peer_times+=("$p")
  table+=("$(printf '%5d  %9s  %16s  %14s' "$i" "$b" "$p" "$l1 / $l2")")
  sleep 2
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "save → new answer (s)"
printf '%5s  %9s  %16s  %14s\n' round berth "dotnet watch" "load (b / dw)"
printf '%s\n' "${table[@]}"
mb=$(median "${berth_times[@]:1}") mp=$(median "${peer_times[@]:1}")
printf '%s\n' "median of rounds 2-$rounds (round 1 is Hot Reload's warm-up): berth $mb s, dotnet watch $mp s$(awk -v b="$mb" -v p="$mp" 'BEGIN { if (p > 0) printf " (berth/dotnet watch %.2fx)", b / p }')"
grep -E "changes applied|replicas are rolled|rolling out|building |newer change|not rolled out" "$work/watch.log" | sed 's/^/  berth watch said: /' | tail -60
