#!/usr/bin/env bash
# Rootless tests (tests/Berth.EndToEnd.Tests/Rootless, issue #18): the tests run as root and start the prebuilt berth as
# uid 65534 with setpriv; the network-namespace probe runs unshare. Both are util-linux (Essential on Debian/Ubuntu).
set -euo pipefail
if ! command -v setpriv >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null
fi
getent passwd 65534 >/dev/null || echo "rootless: no user with uid 65534; the rootless tests run berth as that uid anyway (setpriv needs no passwd entry)"
echo "rootless: $(setpriv --version | head -1), unprivileged user namespaces: $(setpriv --reuid 65534 --regid 65534 --clear-groups unshare --user --map-root-user --net true 2>/dev/null && echo yes || echo no)"
