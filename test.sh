#!/usr/bin/env bash
# Builds and runs every test (unit tests, iasl checks, CLI tests, guest boots under KVM, QEMU
# cross-checks, short fuzz runs). Pass ctest options through, e.g. ./test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build
ctest --test-dir build --output-on-failure -j2 "$@"
