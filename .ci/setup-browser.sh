#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium through Microsoft.Playwright (ExecutablePath): Playwright cannot
# download its own browser builds here. Waits for another apt run to finish instead of failing on the dpkg lock.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
for i in $(seq 1 60); do
  if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -qq chromium >/dev/null 2>&1; then
    exit 0
  fi
  apt-get update -qq >/dev/null 2>&1 || true
  sleep 5
done
echo "could not install chromium" >&2
exit 1
