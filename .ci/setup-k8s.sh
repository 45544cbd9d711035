#!/usr/bin/env bash
# Installs node (when missing) and the npm packages of the Kubernetes schema validator
# (kubernetes-models + its Istio schemas, and @kubernetes/client-node's model field lists for unknown
# fields), which tests/Berth.Kubernetes.Tests runs over every
# generated object, and Go's text/template compiled to WebAssembly (@evertdespiegeleer/go-template), which renders the
# generated Helm charts in the tests (helm itself is not installable here). Idempotent and quiet. A failure here does not stop CI: the validator tests
# then fail on their own (CI=true) and say what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || echo "k8s: could not install nodejs/npm"
fi
dir=tests/Berth.Kubernetes.Tests/SchemaValidator
if [ ! -d "$dir/node_modules/kubernetes-models" ] || [ ! -d "$dir/node_modules/@kubernetes-models/istio" ] || [ ! -d "$dir/node_modules/@kubernetes/client-node" ] || [ ! -d "$dir/node_modules/@evertdespiegeleer/go-template" ]; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
    || echo "k8s: npm ci failed in $dir; the schema validation tests will fail"
fi
if command -v node >/dev/null 2>&1; then
  echo "k8s: schema validator ready (node $(node --version))"
fi
exit 0
