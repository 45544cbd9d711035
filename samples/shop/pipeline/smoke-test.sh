#!/usr/bin/env bash
# Smoke test of one shop role: start it on a free loopback port, wait for /healthz, write a JUnit result.
#   bash pipeline/smoke-test.sh ROLE RESULT.xml
set -uo pipefail
role=$1 out=$2
mkdir -p "$(dirname "$out")"
port=$(( 20000 + RANDOM % 20000 ))
PORT=$port ASPNETCORE_URLS="http://127.0.0.1:$port" dotnet app/out/Shop.dll "$role" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
status=failed
for _ in $(seq 150); do
  if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    if head -n 1 <&3 | grep -q ' 200 '; then status=passed; fi
    exec 3>&-
    [ "$status" = passed ] && break
  fi
  sleep 0.2
done
{
  echo "<testsuite name=\"smoke-$role\">"
  if [ "$status" = passed ]; then
    echo "  <testcase classname=\"smoke.$role\" name=\"healthz\"/>"
  else
    echo "  <testcase classname=\"smoke.$role\" name=\"healthz\"><failure message=\"no 200 from /healthz on 127.0.0.1:$port within 30s\"/></testcase>"
  fi
  echo "</testsuite>"
} > "$out"
echo "smoke $role: $status"
