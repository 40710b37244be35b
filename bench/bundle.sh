#!/usr/bin/env bash
# A self-contained copy of the shardwise CLI and bench/scaling.ts, for measuring on a machine that has Node.js
# but no npm registry (a larger box lent for a benchmark): esbuild bundles, the tfjs wasm binaries, the status
# page's assets, and the few packages that cannot be bundled (the ES modules loaded with import(), a native
# addon) in OUTDIR/node_modules.
#
#   bench/bundle.sh OUTDIR
#   node OUTDIR/bench/scaling.js [--only overhead] ...   (there, with nats-server on PATH)
#
# bench/scaling.js starts `node OUTDIR/cli/index.js` for the cluster's processes, as the compiled tree would
# (launcher/cluster-options.ts, defaultShardwiseCommand). The code is the checkout's, without tsx's loader.
set -euo pipefail
out=$(realpath -m "${1:?usage: bench/bundle.sh OUTDIR}")
cd "$(dirname "$0")/.."
# OUTDIR is replaced: only an earlier bundle (it holds the marker) or an empty or missing folder, never anything else.
marker=.shardwise-bundle
if [ -e "$out" ] && [ ! -e "$out/$marker" ] && [ -n "$(ls -A "$out")" ]; then
  echo "bench/bundle.sh: $out exists and is not an earlier bundle (no $marker in it); give a new or empty folder" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out"
touch "$out/$marker"

# Loaded at run time by name, not bundled: tfjs-node(-gpu) are optional (absent here: wasm is used), tsx only
# runs TypeScript, resvg is a native addon, cockatiel is ESM-only (common/esm-import.ts).
external=(@tensorflow/tfjs-node @tensorflow/tfjs-node-gpu tsx tsx/cjs @resvg/resvg-js)
bundle() {
  node_modules/.bin/esbuild "$1" --bundle --platform=node --format=cjs --target=node20 --log-level=error \
    --outfile="$out/$2" "${external[@]/#/--external:}"
}

# Each entry point's folder also gets the worker-thread entries and assets it finds beside itself (__dirname).
for dir in cli bench; do
  bundle common/training/share-thread-main.ts "$dir/share-thread-main.js"
  bundle common/reporting/curve-thread-main.ts "$dir/curve-thread-main.js"
  cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$out/$dir/"
  cp -r status/assets "$out/$dir/"
done
bundle cli/index.ts cli/index.js
bundle bench/scaling.ts bench/scaling.js

mkdir -p "$out/node_modules/@resvg"
cp -r node_modules/cockatiel "$out/node_modules/"
cp -r node_modules/@resvg/resvg-js node_modules/@resvg/resvg-js-linux-x64-gnu "$out/node_modules/@resvg/"
echo "bundled into $out ($(du -sh "$out" | cut -f1))"
