#!/usr/bin/env bash
# Runtime tests: busybox-static gives the offline Docker test image its root filesystem (no registry is reachable);
# perl runs the process driver's per-replica supervisor (perl-base is Essential; Time::HiRes stamps logs in µs).
set -euo pipefail
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
perl -MTime::HiRes -e1 2>/dev/null || need+=(perl)
# slirp4netns gives process pods asking for egress: true their userspace network (PodEgressTests fails without it).
command -v slirp4netns >/dev/null || need+=(slirp4netns)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "runtime: busybox $(/bin/busybox | head -1 | awk '{print $2}'), perl $(perl -e 'print $^V'), $(slirp4netns --version | head -1)"
