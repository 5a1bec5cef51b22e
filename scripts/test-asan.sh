#!/usr/bin/env bash
# The test suite against the addon built with AddressSanitizer and UndefinedBehaviorSanitizer
# (`npm run build:asan` → build-asan/build/Release/mob.node). Node itself is not instrumented,
# so the ASan runtime is preloaded; leak detection is off because Node frees little at exit by
# design, and the addon's own descriptor hygiene is checked by test/exhaustion.test.ts instead.
# Every test process, and every `mob` child they spawn, inherits the environment below.
# build.test.ts and package.test.ts are left out: they rebuild and repackage the ordinary addon,
# not this one, and the preloaded runtime would instrument make and the compiler too (GNU make
# 4.3 trips ASan in its own makefile reader). MOB_ASAN=1 lets RSS-bound tests skip: under ASan
# the resident set is shadow memory and quarantine, not the server's own.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build:asan
npm run build:ts
runtime="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$runtime"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export MOB_PREBUILD="$PWD/build-asan"
export MOB_ASAN=1
node dist/cli/main.js info | grep -q build-asan || { echo "test:asan: the ASan build did not load" >&2; exit 1; }
files=()
for f in test/*.test.ts; do case "$f" in test/build.test.ts|test/package.test.ts) ;; *) files+=("$f") ;; esac; done
exec node --import tsx --test "${files[@]}"
