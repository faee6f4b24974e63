#!/usr/bin/env bash
# Builds and runs every libFuzzer target for a while; exits non-zero if any of them finds a crash.
#
#   fuzz/run.sh [seconds]     # default 10 seconds per target
#
# Seeds: fuzz/corpus/<target>/ (kernel_loader's are written by build-fuzz/make_corpus: regenerate with
# `build-fuzz/make_corpus fuzz/corpus/kernel_loader`). New inputs go to build-fuzz/corpus/<target>/, crash
# reproducers to build-fuzz/artifacts/ (replay one with `build-fuzz/<target>_fuzz <file>`).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/build-fuzz"
seconds=${1:-10}

"$root/fuzz/build.sh" || exit 1

seeds="$root/fuzz/corpus/kernel_loader"
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    mkdir -p "$seeds"
    "$out/make_corpus" "$seeds" || exit 1
fi

status=0
for fuzzer in "$out"/*_fuzz; do
    name=$(basename "$fuzzer" _fuzz)
    work="$out/corpus/$name"
    mkdir -p "$work" "$out/artifacts"
    corpora=("$work")
    [ -d "$root/fuzz/corpus/$name" ] && corpora+=("$root/fuzz/corpus/$name")
    echo "fuzzing $name for ${seconds}s"
    if ! "$fuzzer" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name-" "${corpora[@]}"; then
        echo "FAIL: $name found a crash (reproducers in $out/artifacts/)" >&2
        status=1
    fi
done
exit $status
