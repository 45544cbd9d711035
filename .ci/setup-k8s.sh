#!/usr/bin/env bash
# Installs node (when missing) and the npm packages of the Kubernetes schema validator
# (kubernetes-models + its Istio schemas, and @kubernetes/client-node's model field lists for unknown
# fields), which tests/Berth.Kubernetes.Tests runs over every
# generated object, and Go's text/template compiled to WebAssembly (@evertdespiegeleer/go-template), which renders the
# generated Helm charts in the tests (helm itself is not installable here). Idempotent and quiet. Fails (and so stops
# CI) when node or the packages cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || { echo "k8s: could not install nodejs/npm" >&2; exit 1; }
fi
dir=tests/Berth.Kubernetes.Tests/SchemaValidator
packages="kubernetes-models @kubernetes-models/istio @kubernetes/client-node @evertdespiegeleer/go-template"
missing=0
for package in $packages; do [ -d "$dir/node_modules/$package" ] || missing=1; done
if [ "$missing" -eq 1 ]; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
    || { echo "k8s: npm ci failed in $dir; the schema validator cannot be installed" >&2; exit 1; }
fi
for package in $packages; do
  [ -d "$dir/node_modules/$package" ] || { echo "k8s: $dir/node_modules/$package is missing after npm ci" >&2; exit 1; }
done
echo "k8s: schema validator ready (node $(node --version))"
