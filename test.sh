#!/usr/bin/env bash
# Runs every test project and prints one closing line: "N passed, N failed, N skipped".
# Tests that need Docker or cgroups skip with a reason when those are missing, unless
# BERTH_REQUIRE_DOCKER=1 / BERTH_REQUIRE_CGROUPS=1 (as .ci/run sets) make them fail.
set -uo pipefail
cd "$(dirname "$0")"
out=$(mktemp)
dotnet test Berth.slnx --nologo -v q --logger "console;verbosity=minimal" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
awk '
  /(Passed|Failed)!  *- *Failed: *[0-9]+, *Passed: *[0-9]+, *Skipped: *[0-9]+/ {
    line = $0
    gsub(/,/, "", line)
    for (i = 1; i <= NF; i++) {
      split(line, w, / +/)
    }
    n = split(line, w, / +/)
    for (i = 1; i < n; i++) {
      if (w[i] == "Failed:") f += w[i+1]
      if (w[i] == "Passed:") p += w[i+1]
      if (w[i] == "Skipped:") s += w[i+1]
    }
  }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
' "$out"
rm -f "$out"
exit "$rc"
