#!/usr/bin/env bash
# A rolling update (berth apply + berth rollout status) of a service under a bounded load through the mesh.
# No peer runs here: there is no Kubernetes, Swarm or docker compose on this machine (see docs/benchmarks.md).
#   bench/rollouts/rollout.sh [REPLICAS] [RUNS]
# Reports per round: seconds from apply until every replica is Ready on the new revision, requests sent, failed.
# Traffic: curl to the mesh's stable port on 127.0.0.1 only, at most 20 000 requests per case.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPLICAS=${1:-4}
RUNS=${2:-2}
dotnet build src/Berth.Cli -v q -nologo >/dev/null
BERTH=(dotnet "$PWD/src/Berth.Cli/bin/Debug/net10.0/berth.dll")
work=$(mktemp -d /tmp/berth-rollout-bench.XXXXXX)
trap '(cd "$work" && "${BERTH[@]}" down >/dev/null 2>&1 || true); rm -rf "$work"' EXIT
server='use IO::Socket::INET; $$| = 1; my $$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $$ENV{PORT}, Listen => 128, ReuseAddr => 1) or die; while (my $$c = $$s->accept) { while (my $$l = <$$c>) { last if $$l =~ /^\r?\n$$/ } print $$c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"; close $$c; }'
spec() {
  cat >"$work/berth.yaml" <<YAML
name: rolloutbench
services:
  web:
    run: [perl, -e, '${server//\'/\'\'}']
    replicas: $REPLICAS
    environment: {V: "$1"}
    endpoints: {http: {}}
    probes: {readiness: {http: /, period: 500ms}}
    stop_grace_period: 2s
YAML
}
cd "$work"
spec 0
"${BERTH[@]}" up -d >/dev/null 2>&1
"${BERTH[@]}" rollout status web --timeout 180s >/dev/null
url=$(jq -r .url .berth/api.json); token=$(cat .berth/api-token)
port=$(curl -s -H "Authorization: Bearer $token" "$url/v1/services" | jq '.[0].endpoints[0].port')

load() {
  local n=0 f=0
  while [ ! -e stop ] && [ $n -lt 20000 ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/" || true)
    n=$((n + 1)); [ "$code" = 200 ] || f=$((f + 1))
  done
  echo "$n $f" >load.out
}


echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $REPLICAS replicas; $(date -u +%FT%TZ)"
v=0
for round in $(seq 1 "$RUNS"); do
  v=$((v + 1)); spec "$v"; rm -f stop load.out
  load & lp=$!
  t0=$(date +%s.%N)
  "${BERTH[@]}" apply >/dev/null 2>&1
  "${BERTH[@]}" rollout status web --timeout 300s >/dev/null
  t1=$(date +%s.%N)
  touch stop; wait $lp; read -r n f <load.out
  printf 'round %d rolling-update  %6.2fs  %6d requests  %d failed\n' "$round" "$(echo "$t1 - $t0" | bc)" "$n" "$f"

done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
