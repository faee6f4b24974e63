#!/bin/sh
# Builds disk_bench, then runs the disk image library benchmark (library vs pread/pwrite on a raw host file) with
# its default settings (docs/performance.md, "Virtual disks"). Run from anywhere; extra arguments go to
# disk_bench (see --help). BUILD_DIR selects the build directory (default: build in the repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
ninja -C "$build" disk_bench >/dev/null
exec "$build/bench/disk_bench" "$@"
