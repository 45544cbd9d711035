#!/usr/bin/env bash
# The shop sample's two offline image layouts on the same engine, in one run:
#   fd: framework-dependent `dotnet build` output on the base made from the host's runtime (docker/base-image.sh)
#   sc: self-contained `dotnet publish -r linux-x64` (runtime pack from NuGet) on the same base (it only needs its glibc)
# Prints the base import time (cold, then cached), the app layer size, image build time after a one-file change, and
# container start to the first 200 from /healthz (host network, loopback). N rounds each (default 3), interleaved.
#   usage: bench/dockersample/image-variants.sh [N]
set -euo pipefail
n=${1:-3}
shop=$(cd "$(dirname "$0")/../../samples/shop" && pwd)
work=$(mktemp -d)
trap 'docker rm -f bench-shop-fd bench-shop-sc >/dev/null 2>&1 || true; docker rmi -f bench-shop-fd bench-shop-sc bench-shop-base:cold >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cp -r "$shop"/{app,Directory.Build.props,Directory.Packages.props} "$work/"
cd "$work"
rm -rf app/bin app/obj app/out
now() { date +%s.%N; }
s=$(now); bash "$shop/docker/base-image.sh" bench-shop-base:cold 2>/dev/null; e=$(now); echo "base image, cold: $(echo "$e - $s" | bc) s"
s=$(now); bash "$shop/docker/base-image.sh" bench-shop-base:cold 2>/dev/null; e=$(now); echo "base image, cached: $(echo "$e - $s" | bc) s"
s=$(now); dotnet build app/Shop.csproj -c Release -o app/out --nologo -v q >/dev/null; e=$(now); echo "fd: dotnet build: $(echo "$e - $s" | bc) s, $(du -sh app/out | cut -f1)"
s=$(now); dotnet publish app/Shop.csproj -c Release -r linux-x64 --self-contained -o app/sc --nologo -v q >/dev/null; e=$(now); echo "sc: dotnet publish: $(echo "$e - $s" | bc) s, $(du -sh app/sc | cut -f1)"
printf 'app/bin\napp/obj\n' > .dockerignore
printf 'FROM bench-shop-base:cold\nWORKDIR /shop\nCOPY app/out app/out\n' > Dockerfile.fd
printf 'FROM bench-shop-base:cold\nWORKDIR /shop\nCOPY app/sc app/sc\n' > Dockerfile.sc
for i in $(seq 1 "$n"); do
  for k in fd sc; do
    echo "$i" >> "app/$([ $k = fd ] && echo out || echo sc)/changed.txt"
    s=$(now); docker build -q -f Dockerfile.$k -t bench-shop-$k . >/dev/null 2>&1; e=$(now)
    echo "$k round $i: image build $(echo "$e - $s" | bc) s, app layer $(docker history --format '{{.Size}}' bench-shop-$k | head -1)"
  done
done
for i in $(seq 1 "$n"); do
  for k in fd sc; do
    port=$(( 20000 + RANDOM % 20000 ))
    cmd=(dotnet app/out/Shop.dll worker); [ $k = sc ] && cmd=(app/sc/Shop worker)
    s=$(now); docker run -d --rm --name bench-shop-$k --network host -e PORT=$port bench-shop-$k "${cmd[@]}" >/dev/null
    for _ in $(seq 1 1500); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.02; done
    e=$(now); echo "$k round $i: container start to healthy $(echo "$e - $s" | bc) s"
    docker rm -f bench-shop-$k >/dev/null
  done
done
