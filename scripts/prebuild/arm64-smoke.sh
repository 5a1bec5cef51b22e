#!/usr/bin/env bash
# Loads an arm64 prebuild in a real arm64 Node under qemu-user and runs one loopback round
# trip through it (listen, connect, poll, accept, write, read). The arm64 Node is Debian's,
# unpacked (not installed) into NODE_ROOT with its libraries, so the host's node is untouched:
#   scripts/prebuild/arm64-smoke.sh --fetch NODE_ROOT     # apt-get download + dpkg -x, once
#   scripts/prebuild/arm64-smoke.sh NODE_ROOT ADDON.node  # the smoke test
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ "${1:-}" == --fetch ]]; then
  root="$2"
  mkdir -p "$root/debs"
  chmod 777 "$root/debs"  # apt's _apt user writes the downloads
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
  (cd "$root/debs" && apt-get download -qq nodejs:arm64 libnode108:arm64 libuv1:arm64 libicu72:arm64 libssl3:arm64 \
    libc-ares2:arm64 libnghttp2-14:arm64 libbrotli1:arm64 zlib1g:arm64 libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 \
    node-cjs-module-lexer node-acorn node-undici node-busboy)
  for deb in "$root"/debs/*.deb; do dpkg -x "$deb" "$root"; done
  exit 0
fi
root="$1"
addon="$2"
# qemu-user's -L makes the unpacked tree the arm64 program's root for the loader and libraries.
exec qemu-aarch64-static -L "$root" "$root/usr/bin/node" "$here/arm64-smoke.cjs" "$addon" "$here/../../node_modules/node-gyp-build"
