#!/bin/sh
# Builds vmgen, the bench_boot guest and boot_bench, then runs the VMM core benchmark with its default
# settings (docs/performance.md). Run from anywhere; extra arguments go to boot_bench (see --help).
# BUILD_DIR selects the build directory (default: build in the repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
ninja -C "$build" boot_bench >/dev/null
exec "$build/bench/boot_bench" "$@"
