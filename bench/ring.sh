#!/bin/sh
# Builds vmgen, the vmbus_ring_bench guest and ring_bench, then runs the VMBus ring benchmark with its default
# settings (docs/performance.md, "VMBus ring throughput"). Run from anywhere; extra arguments go to ring_bench
# (see --help). BUILD_DIR selects the build directory (default: build in the repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
ninja -C "$build" ring_bench >/dev/null
exec "$build/bench/ring_bench" "$@"
