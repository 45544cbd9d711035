#!/usr/bin/env bash
# BenchmarkDotNet micro-benchmarks of the mesh's per-request logic (balancer picks, breaker/budget/ejection bookkeeping).
# Usage: bench/mesh/micro.sh [BenchmarkDotNet args, default: --filter '*' --job short]
set -euo pipefail
cd "$(dirname "$0")/../.."
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--filter '*' --job short)
dotnet run -c Release --project bench/mesh/Berth.Mesh.Micro -- "${args[@]}"
