#!/usr/bin/env bash
# Fresh clone -> first 'berth --version', per install route, and the second command's time (docs/benchmarks.md, "Install").
# Usage: bench/install/measure.sh [REPO]   (default: this clone; it is cloned afresh into a temp folder for each route)
#        ROUTES="single-file native-aot" bench/install/measure.sh   (only those routes)
# The NuGet package cache (~/.nuget/packages) is the machine's, warm: the numbers are build + pack/publish, not downloads.
set -uo pipefail
repo="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
route() { # $1 = name, $2 = first command (fresh clone -> --version), $3 = second command (--version again)
  local dir="$work/$1" start first second out
  [[ -z "${ROUTES:-}" || " $ROUTES " == *" $1 "* ]] || return 0
  git clone -q "$repo" "$dir" || return
  cd "$dir" || return
  start=$(now)
  if out=$(bash -c "$2" 2>&1 | tail -6 | tr -s "\n" " "); then :; fi
  first=$(secs "$start" "$(now)")
  start=$(now)
  bash -c "$3" >/dev/null 2>&1
  second=$(secs "$start" "$(now)")
  printf '%-22s first %7ss  again %6ss  -> %s\n' "$1" "$first" "$second" "$out"
  cd "$work" && rm -rf "$dir"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(dotnet --version)"
route "dotnet-run" "dotnet run --project src/Berth.Cli -- --version" "dotnet run --project src/Berth.Cli -- --version"
route "./berth" "./berth --version" "./berth --version"
route "tool-install" "dotnet pack src/Berth.Cli -o feed -v q && dotnet tool install --tool-path tools berth --add-source feed >/dev/null && tools/berth --version" "tools/berth --version"
# Single file: the published binary must also load a spec (validate the shop sample), not only print its version; its size is printed.
route "single-file" "dotnet publish src/Berth.Cli -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -o single -v q && single/berth validate -f samples/shop/berth.yaml >&2 && echo \"size \$(du -m single/berth | cut -f1) MiB\" >&2 && single/berth --version" "single/berth --version"
# Native AOT: warnings are not errors here, to see whether it builds and runs at all with our libraries. PublishAot is set
# in the CLI's project file of the clone, not with -p: a global property reaches the netstandard2.0 analyzer project too,
# which then fails with NETSDK1207 ("Ahead-of-time compilation is not supported for the target framework").
route "native-aot" "sed -i 's|<PackAsTool>true</PackAsTool>|&<PublishAot>true</PublishAot>|' src/Berth.Cli/Berth.Cli.csproj && dotnet publish src/Berth.Cli -c Release -r linux-x64 -p:TreatWarningsAsErrors=false -o aot > aot.log 2>&1; echo \"\$(grep -oE 'warning IL[0-9]+' aot.log | sort | uniq -c | sort -rn | head -5 | tr -s ' \n' ' ')\" >&2; echo \"size \$(du -m aot/berth | cut -f1) MiB\" >&2; aot/berth validate -f samples/shop/berth.yaml >&2 && aot/berth --version" "aot/berth --version"
