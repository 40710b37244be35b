#!/usr/bin/env bash
# Regenerates the TypeScript for proto/shardwise.proto with ts-proto: usage gen-proto.sh [OUTDIR]
# (default proto/generated). test/proto-generated.test.ts runs it into a temporary folder and fails when
# the committed proto/generated differs, so run it after every change to the .proto file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/proto/generated}
"$root/scripts/ensure-deb.sh" protoc:protobuf-compiler
plugin="$root/node_modules/.bin/protoc-gen-ts_proto"
[ -x "$plugin" ] || { echo "ts-proto is not installed ($plugin missing): run npm ci" >&2; exit 1; }

# Options, and why:
#   outputServices=grpc-js          service definition + client class for @grpc/grpc-js
#   env=node                        bytes fields are Buffer, so tensor data can be a view, not a copy
#   forceLong=number                uint64 steps/offsets as numbers (ts-proto throws beyond 2^53)
#   useOptionals=messages           message-typed fields may be left out when building a message
#   oneof=unions                    oneof payloads are discriminated unions on $case
#   removeEnumPrefix=true           DType.FLOAT32 rather than DType.DTYPE_FLOAT32
#   outputJsonMethods=false         the wire is binary only; JSON methods would be dead code
#   annotateFilesWithVersion=false  the output must not change with the Debian release of protoc
opts=outputServices=grpc-js,esModuleInterop=true,env=node,forceLong=number,useOptionals=messages
opts+=,oneof=unions,removeEnumPrefix=true,outputJsonMethods=false,annotateFilesWithVersion=false

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Run from the repository root with a relative path so the output does not depend on where it lives.
(cd "$root" && protoc --plugin=protoc-gen-ts_proto="$plugin" --ts_proto_out="$tmp" --ts_proto_opt="$opts" \
  --proto_path=proto proto/shardwise.proto)

header='// generated from proto/shardwise.proto by scripts/gen-proto.sh - do not edit'
mkdir -p "$out"
rm -f "$out"/*.ts
for f in "$tmp"/*.ts; do
  { echo "$header"; cat "$f"; } >"$out/$(basename "$f")"
done
