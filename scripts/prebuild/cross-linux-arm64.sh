#!/usr/bin/env bash
# The linux-arm64 (glibc) prebuild, cross-compiled on an x64 Debian/Ubuntu host with the
# distribution's aarch64 toolchain (apt-get install g++-aarch64-linux-gnu). Node-API headers
# do not depend on the CPU, so the host's node headers serve. Writes
# OUT/prebuilds/linux-arm64/mob-echo.glibc.node (OUT: the first argument, default this checkout).
# Check it with `file`; run it with scripts/prebuild/arm64-smoke.sh under qemu-user.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(cd "${1:-$root}" && pwd)"
# Built in a scratch copy: build/ would otherwise end up holding arm64 objects, and
# node-gyp-build prefers build/Release over any prebuild.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/package.json" "$root/binding.gyp" "$root/native" "$scratch/"
ln -s "$root/node_modules" "$scratch/node_modules"
cd "$scratch"
export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++
npx prebuildify --napi --strip --tag-libc --arch arm64 --strip-bin aarch64-linux-gnu-strip
mkdir -p "$out/prebuilds"
cp -r prebuilds/linux-arm64 "$out/prebuilds/"
