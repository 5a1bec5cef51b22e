#!/bin/sh
# Run by the release workflow on each platform right after its prebuild is made: the addon
# must load from prebuilds/ (not a local build) and serve a real client run on loopback.
# POSIX sh: it also runs inside Alpine.
set -eu
cd "$(dirname "$0")/../.."
rm -rf build # node-gyp-build prefers build/Release over a prebuild
# Scratch files go outside the checkout: the release packs it next.
scratch=$(mktemp -d)
node dist/cli/main.js info | tee "$scratch/info.json"
grep -q '"loadedFrom": "prebuild"' "$scratch/info.json"
node dist/cli/main.js serve --port 0 > "$scratch/serve.out" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$scratch"' EXIT
tries=0
until port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$scratch/serve.out") && [ -n "$port" ]; do
  tries=$((tries + 1))
  [ "$tries" -lt 100 ] || { echo "mob serve did not start" >&2; exit 1; }
  sleep 0.1
done
node dist/cli/main.js client --port "$port" --clients 8 --messages 100
