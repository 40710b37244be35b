#!/usr/bin/env bash
# Compiles the TypeScript to JavaScript for the images: usage build.sh [OUTDIR] (default dist).
# tsc emits the code; the files it does not emit (the status page's browser assets) are copied beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
rm -rf "$out"
node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$out"
mkdir -p "$out/status"
cp -r status/assets "$out/status/"
