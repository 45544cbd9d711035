#!/usr/bin/env bash
# Start-to-running latency of the process and Docker drivers, and `docker run -d` of the same image in the same run.
# Needs root (cgroup limits) and a Docker engine (bash .ci/setup-docker.sh); pass --no-docker to skip Docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash .ci/setup-runtime.sh >/dev/null
dotnet run -c Release --project bench/Berth.Bench.Runtime -- "${@:-200}"
