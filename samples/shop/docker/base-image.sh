#!/usr/bin/env bash
# Makes the shop's base image offline from the host's own .NET runtime (no registry needed): the `dotnet` host, hostfxr,
# Microsoft.NETCore.App and Microsoft.AspNetCore.App, plus the shared libraries `ldd` says they need (glibc, libstdc++,
# libgcc_s; no ICU: the app sets InvariantGlobalization), fed to `docker import`.
# Idempotent: an image with this tag made from the same runtime version is kept as it is.
#   usage: base-image.sh [TAG]     (default berth-shop-base:dotnet10)
set -euo pipefail
tag=${1:-berth-shop-base:dotnet10}
dotnet_root=${DOTNET_ROOT:-$(dirname "$(readlink -f "$(command -v dotnet)")")}
runtime=$(ls -1 "$dotnet_root/shared/Microsoft.NETCore.App" | grep '^10\.' | sort -V | tail -1 || true)
aspnet=$(ls -1 "$dotnet_root/shared/Microsoft.AspNetCore.App" 2>/dev/null | grep '^10\.' | sort -V | tail -1 || true)
fxr=$(ls -1 "$dotnet_root/host/fxr" | grep '^10\.' | sort -V | tail -1 || true)
if [ -z "$runtime" ] || [ -z "$aspnet" ] || [ -z "$fxr" ]; then
  echo "base-image.sh: no .NET 10 runtime under $dotnet_root (need shared/Microsoft.NETCore.App/10.*, shared/Microsoft.AspNetCore.App/10.*, host/fxr/10.*); install the .NET 10 SDK or set DOTNET_ROOT" >&2
  exit 1
fi
if [ "$(docker image inspect -f '{{index .Config.Labels "berth.dotnet-runtime"}}' "$tag" 2>/dev/null || true)" = "$runtime" ]; then
  echo "base image $tag: up to date (.NET $runtime)" >&2
  exit 0
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/share/dotnet/shared" "$rootfs/usr/share/dotnet/host/fxr" "$rootfs/usr/bin" "$rootfs/tmp" "$rootfs/etc"
chmod 1777 "$rootfs/tmp"
cp -a "$dotnet_root/dotnet" "$rootfs/usr/share/dotnet/"
cp -a "$dotnet_root/host/fxr/$fxr" "$rootfs/usr/share/dotnet/host/fxr/"
mkdir -p "$rootfs/usr/share/dotnet/shared/Microsoft.NETCore.App" "$rootfs/usr/share/dotnet/shared/Microsoft.AspNetCore.App"
cp -a "$dotnet_root/shared/Microsoft.NETCore.App/$runtime" "$rootfs/usr/share/dotnet/shared/Microsoft.NETCore.App/"
cp -a "$dotnet_root/shared/Microsoft.AspNetCore.App/$aspnet" "$rootfs/usr/share/dotnet/shared/Microsoft.AspNetCore.App/"
ln -s ../share/dotnet/dotnet "$rootfs/usr/bin/dotnet"
# The debugger and tracing helpers are not needed to run an app, and pull in libraries (lttng) the host may not have.
rm -f "$rootfs"/usr/share/dotnet/shared/Microsoft.NETCore.App/"$runtime"/{libmscordaccore.so,libmscordbi.so,libcoreclrtraceptprovider.so,createdump}

# Every shared library the host, hostfxr and the runtime's native parts link to, copied at its own path (symlinks resolved).
mapfile -t libs < <(find "$rootfs/usr/share/dotnet" -type f \( -name '*.so' -o -name dotnet \) -print0 | xargs -0 ldd 2>/dev/null \
  | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u)
for lib in "${libs[@]}"; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
# glibc's loader is found at /lib64 by every x86-64 binary; Debian keeps /lib64 as a real directory, merged-/usr hosts a link.
printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/share/dotnet:/usr/bin:/bin DOTNET_ROOT=/usr/share/dotnet DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1' \
  --change "LABEL berth.dotnet-runtime=$runtime" \
  - "$tag" >/dev/null
echo "base image $tag: made from the host's .NET $runtime ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
