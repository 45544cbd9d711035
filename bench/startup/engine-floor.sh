#!/usr/bin/env bash
# The engine's own floor for `up`: N busybox `sleep` containers created and started straight through the engine API
# (curl on the Unix socket, no client library, no orchestration), P at a time, each create followed by its start —
# close to what any client, Berth or Compose, must wait for (plus a bash and two curl processes per container). Prints the milliseconds from the first request to the last
# start's answer (the start call answers once the container runs).
#   bench/startup/engine-floor.sh N P LABEL [host|none]      e.g. bench/startup/engine-floor.sh 40 16 floor-40 host
# Every container gets the label berth.bench=LABEL; remove them with: bench/startup/engine-floor.sh 0 0 LABEL (N = 0).
# Traffic: none but curl's to the engine's Unix socket.
set -euo pipefail
N=$1; P=$2; LABEL=$3; NET=${4:-host}
SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
IMAGE=${BERTH_BENCH_IMAGE:-berth-test/busybox:base}
api() { curl -sS --fail --max-time 60 --unix-socket "$SOCK" "$@"; }
if [ "$N" = 0 ]; then
  ids=$(api "http://engine/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22berth.bench%3D$LABEL%22%5D%7D" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 || true)
  for id in $ids; do api -X DELETE "http://engine/v1.41/containers/$id?force=1" >/dev/null || true; done
  exit 0
fi
one() { # i
  local body id
  body=$(printf '{"Image":"%s","Cmd":["sleep","3600"],"Labels":{"berth.bench":"%s"},"StopTimeout":1,"HostConfig":{"NetworkMode":"%s","LogConfig":{"Type":"json-file","Config":{"max-size":"10485760","max-file":"5"}}}}' "$IMAGE" "$LABEL" "$NET")
  id=$(api -X POST -H 'Content-Type: application/json' -d "$body" "http://engine/v1.41/containers/create?name=$LABEL-$1" | cut -d'"' -f4)
  api -X POST "http://engine/v1.41/containers/$id/start" >/dev/null
}
export -f one api; export SOCK IMAGE LABEL NET
t0=$(date +%s%N)
seq 1 "$N" | xargs -P "$P" -I{} bash -c 'one {}'
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000000 ))
