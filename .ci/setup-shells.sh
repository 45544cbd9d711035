#!/usr/bin/env bash
# The completion tests load 'berth completion zsh|fish' in real zsh and fish (Berth.Cli.Tests Shell/CompletionTests).
# PowerShell is not packaged by Debian; its script is checked for shape only. Waits for another apt run instead of failing on the dpkg lock.
set -euo pipefail
if command -v zsh >/dev/null 2>&1 && command -v fish >/dev/null 2>&1; then
  exit 0
fi
for i in $(seq 1 60); do
  if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -qq zsh fish >/dev/null 2>&1; then
    exit 0
  fi
  apt-get update -qq >/dev/null 2>&1 || true
  sleep 5
done
echo "could not install zsh and fish" >&2
exit 1
