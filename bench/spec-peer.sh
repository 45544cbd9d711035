#!/usr/bin/env bash
# Times `berth validate` against a peer, `docker-compose config -q` (Compose's own loader and validator), on the same
# generated 500-service Compose file, as whole processes (startup included). Five runs each, medians reported.
# Needs: the .NET SDK; docker-compose on PATH (apt-get install docker-compose) for the peer, else it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dotnet build -c Release bench/Berth.Bench.Spec -v q -nologo >/dev/null
dotnet publish -c Release src/Berth.Cli -o "$work/berth" -v q -nologo >/dev/null
dotnet bench/Berth.Bench.Spec/bin/Release/net10.0/Berth.Bench.Spec.dll --write "$work/spec" >/dev/null

median_ms() { # command... → median wall time in ms over $runs runs
  local times=()
  for _ in $(seq 1 "$runs"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
berth_compose=$(median_ms dotnet "$work/berth/berth.dll" validate -f "$work/spec/compose.yaml")
berth_yaml=$(median_ms dotnet "$work/berth/berth.dll" validate -f "$work/spec/berth.yaml")
echo "berth validate, 500-service compose.yaml: ${berth_compose} ms (median of $runs)"
echo "berth validate, 500-service berth.yaml:   ${berth_yaml} ms (median of $runs)"
if command -v docker-compose >/dev/null; then
  peer=$(median_ms docker-compose -f "$work/spec/compose.yaml" config -q)
  echo "docker-compose $(docker-compose version --short) config -q, same compose.yaml: ${peer} ms (median of $runs)"
  echo "ratio peer/berth: $(awk -v a="$peer" -v b="$berth_compose" 'BEGIN { printf "%.1f", a / b }')"
else
  echo "docker-compose not found: peer skipped"
fi
