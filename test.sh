#!/usr/bin/env bash
# Runs every test project and prints one closing line: "N passed, N failed, N skipped".
#
# It cannot be green by accident:
# - the solution is built first; a test project that does not build counts as a failure (one per project);
# - each test project runs on its own and writes a TRX report; a project whose test host aborts, crashes or writes no
#   report counts as a failure, on top of whatever tests it did report;
# - with BERTH_REQUIRE_NO_SKIPS=1 (as .ci/run sets) a skipped test that is not in .ci/allowed-skips.txt counts as a
#   failure (and not as skipped);
# - any failure makes the exit code non-zero.
# Tests that measure time or CPU (TIMING_PROJECTS) run last, one project at a time, with nothing else running; the other
# projects run two at a time. Tests that need Docker or cgroups skip with a reason when those are missing, unless
# BERTH_REQUIRE_DOCKER=1 / BERTH_REQUIRE_CGROUPS=1 / BERTH_REQUIRE_NODE_VALIDATOR=1 (as .ci/run sets) make them fail.
# Arguments are passed to every 'dotnet test' (e.g. --filter).
set -uo pipefail
cd "$(dirname "$0")"
TIMING_PROJECTS="Berth.Runtime.Tests Berth.Rollouts.Tests Berth.Mesh.Tests Berth.Chaos.Tests"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== build"
dotnet build Berth.slnx --nologo -v q 2>&1 | tee "$work/build.log"
build_rc=${PIPESTATUS[0]}

projects=$(ls tests/*/*.Tests.csproj | sort)
run_project() { # $1 = path of the .csproj; writes $work/<name>.log, $work/<name>/*.trx and $work/<name>.rc
  local csproj=$1 name
  name=$(basename "$csproj" .csproj)
  dotnet test "$csproj" --no-build --nologo -v q --logger "console;verbosity=minimal" --logger "trx;LogFileName=$name.trx" \
    --results-directory "$work/$name" "${@:2}" >"$work/$name.log" 2>&1
  echo $? >"$work/$name.rc"
  cat "$work/$name.log"
}
export -f run_project
export work

broken=()
runnable=()
timing=()
# An error in a project that is not a test project (src/, the test kit, a test host) leaves every test project without a
# fresh assembly: all of them count as not building, rather than running what an earlier build left behind.
if grep -E "error [A-Z]+[0-9]+" "$work/build.log" | grep -vqE "\[[^]]*\.Tests\.csproj\]"; then
  all_broken=1
else
  all_broken=0
fi
for csproj in $projects; do
  name=$(basename "$csproj" .csproj)
  if [ "$build_rc" -ne 0 ] && { [ "$all_broken" -eq 1 ] || grep -qF "/$name.csproj]" "$work/build.log"; }; then
    broken+=("$name")
  elif [[ " $TIMING_PROJECTS " == *" $name "* ]]; then
    timing+=("$csproj")
  else
    runnable+=("$csproj")
  fi
done
if [ "$build_rc" -ne 0 ] && [ ${#broken[@]} -eq 0 ]; then
  broken+=("(the solution)") # the build failed without naming a project: count it
fi

if [ ${#runnable[@]} -gt 0 ]; then
  echo "== tests (two projects at a time)"
  printf '%s\n' "${runnable[@]}" | xargs -P 2 -I{} bash -c 'run_project "$@"' _ {} "$@"
fi
if [ ${#timing[@]} -gt 0 ]; then
  echo "== timing-sensitive tests (one project at a time, nothing else running)"
  for csproj in "${timing[@]}"; do
    run_project "$csproj" "$@"
  done
fi

allow=.ci/allowed-skips.txt
python3 - "$work" "${BERTH_REQUIRE_NO_SKIPS:-0}" "$allow" "${broken[@]}" <<'EOF'
import glob, os, sys, xml.etree.ElementTree as ET
work, require_no_skips, allow_file, broken = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4:]
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
allowed = set()
if os.path.exists(allow_file):
    for line in open(allow_file, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            allowed.add(line.split()[0])
passed = failed = skipped = 0
problems = [f"{name}: does not build" for name in broken]
failed += len(broken)
for rc_file in sorted(glob.glob(os.path.join(work, "*.rc"))):
    name = os.path.basename(rc_file)[:-3]
    trx = glob.glob(os.path.join(work, name, "*.trx"))
    log = open(os.path.join(work, name + ".log"), encoding="utf-8", errors="replace").read()
    if not trx:
        failed += 1
        problems.append(f"{name}: the test run wrote no report (exit {open(rc_file).read().strip()}): the test host did not start or aborted")
        continue
    root = ET.parse(trx[0]).getroot()
    summary = root.find("t:ResultSummary", ns)
    names = {u.get("id"): (u.find("t:TestMethod", ns).get("className") + "." + u.find("t:TestMethod", ns).get("name"))
             for u in root.iterfind("t:TestDefinitions/t:UnitTest", ns)}
    for r in root.iterfind("t:Results/t:UnitTestResult", ns):
        outcome = r.get("outcome")
        if outcome == "Passed":
            passed += 1
        elif outcome == "NotExecuted":
            full = names.get(r.get("testId"), r.get("testName"))
            if require_no_skips and full not in allowed:
                failed += 1
                problems.append(f"{name}: {full} was skipped under CI and is not in {allow_file}")
            else:
                skipped += 1
        else:
            failed += 1
    outcome = summary.get("outcome") if summary is not None else "missing"
    rc = int(open(rc_file).read().strip() or "1")
    reported_failures = any(r.get("outcome") not in ("Passed", "NotExecuted") for r in root.iterfind("t:Results/t:UnitTestResult", ns))
    lowered = log.lower()
    if outcome in ("Aborted", "Error", "Timeout", "missing") or "test run aborted" in lowered or "test run was aborted" in lowered or "test host process crashed" in lowered:
        failed += 1
        problems.append(f"{name}: the test run ended abnormally (outcome {outcome}); see its output above")
    elif rc != 0 and not reported_failures:
        failed += 1
        problems.append(f"{name}: dotnet test exited {rc} without reporting a failed test; see its output above")
for p in problems:
    print("test.sh: " + p)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
EOF
