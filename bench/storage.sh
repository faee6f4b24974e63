#!/bin/sh
# Builds vmgen, the storvsc_bench guest and storage_bench, then runs the synthetic SCSI benchmark with its default
# settings (docs/performance.md, "Synthetic SCSI (storvsp)"): raw and dynamic VHDX images of 1 GiB in /var/tmp,
# seq 1 MiB and rand 4 KiB reads and writes at queue depth 1 and 32, 3 runs of 2 s per side. Run from anywhere;
# extra arguments go to storage_bench (see --help). BUILD_DIR selects the build directory (default: build in the
# repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
ninja -C "$build" storage_bench >/dev/null
exec "$build/bench/storage_bench" "$@"
