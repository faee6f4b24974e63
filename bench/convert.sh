#!/bin/sh
# `vmgen convert-vhd` against `qemu-img convert` on the same source, in the same run (docs/performance.md,
# "Virtual disks"). Builds vmgen first. Usage:
#
#   bench/convert.sh [--size-mib 2048] [--runs 6] [--dir /var/tmp]
#
# The source is a dynamic VHDX (32 MiB blocks) made by qemu-img/qemu-io: in units of 32 MiB, unit i holds
# random data when i % 4 is 0 or 1 (half the disk), an allocated block of written zeroes when i % 8 == 2, 4 MiB
# of random data then nothing when i % 8 == 6, and is unallocated otherwise. It is converted to a dynamic VHDX,
# a dynamic VHD and a raw file by
#
#   vmgen convert-vhd SRC DST [--vhd-type dynamic]                (flushes the destination before it returns)
#   qemu-img convert -f vhdx -O vhdx|vpc|raw [-o ...] SRC DST      (qemu-img's default cache mode: no flush)
#   qemu-img convert -t writeback ... SRC DST                      (the same, flushing the destination on close)
#
# each --runs times, interleaved (the order rotates every run); before each conversion the destination is removed
# and the file system synced (untimed); the source stays in the page cache (read once before). Every output is
# checked against the source with `qemu-img compare`. Reports the median wall time [min, max] per tool and target,
# and the ratio of medians vmgen / qemu-img (< 1: vmgen is faster). BUILD_DIR selects the build directory
# (default: build in the repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
size_mib=2048
runs=6
dir=/var/tmp
while [ $# -gt 0 ]; do
    case $1 in
    --size-mib) size_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
unit_mib=32
if [ $((size_mib % (8 * unit_mib))) -ne 0 ]; then
    echo "convert.sh: --size-mib must be a multiple of $((8 * unit_mib))" >&2
    exit 2
fi

if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
ninja -C "$build" vmgen >/dev/null
vmgen=$build/tools/vmgen/vmgen
if ! "$vmgen" convert-vhd --help >/dev/null 2>&1; then
    echo "convert.sh: $vmgen has no convert-vhd command" >&2
    exit 1
fi

work=$(mktemp -d "$dir/convert_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src=$work/source.vhdx

# The source: a sparse raw file laid out as described above, converted by qemu-img (which leaves zeroes
# unallocated), then the zero units written again through qemu-io so that they are allocated blocks.
units=$((size_mib / unit_mib))
truncate -s "${size_mib}M" "$work/source.raw"
i=0
while [ $i -lt $units ]; do
    case $((i % 8)) in
    0 | 1 | 4 | 5) dd if=/dev/urandom of="$work/source.raw" bs=1M count=$unit_mib seek=$((i * unit_mib)) \
        conv=notrunc status=none ;;
    6) dd if=/dev/urandom of="$work/source.raw" bs=1M count=4 seek=$((i * unit_mib)) conv=notrunc status=none ;;
    esac
    i=$((i + 1))
done
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=${unit_mib}M "$work/source.raw" "$src"
zero_writes=""
i=2
while [ $i -lt $units ]; do
    zero_writes="$zero_writes -c \"write -P 0 $((i * unit_mib))M ${unit_mib}M\""
    i=$((i + 8))
done
eval qemu-io -f vhdx "$zero_writes" "$src" >/dev/null
qemu-img compare -q -f raw -F vhdx "$work/source.raw" "$src"
rm "$work/source.raw"
cat "$src" >/dev/null
stored_mib=$(($(du -k "$src" | cut -f1) / 1024))

now_ns() { date +%s%N; }

# run_case TOOL TARGET RUN: one timed conversion; appends "TOOL TARGET seconds" to $work/times.
run_case() {
    tool=$1 target=$2
    case $target in
    vhdx) dst=$work/out.vhdx qfmt=vhdx qopt="-o subformat=dynamic,block_size=${unit_mib}M" vopt="" ;;
    vhd) dst=$work/out.vhd qfmt=vpc qopt="-o subformat=dynamic,force_size=on" vopt="--vhd-type dynamic" ;;
    raw) dst=$work/out.img qfmt=raw qopt="" vopt="" ;;
    esac
    rm -f "$dst"
    sync -f "$work"
    start=$(now_ns)
    # shellcheck disable=SC2086 # $vopt and $qopt are lists of arguments
    case $tool in
    vmgen) "$vmgen" convert-vhd "$src" "$dst" $vopt >/dev/null ;;
    qemu-img) qemu-img convert -f vhdx -O "$qfmt" $qopt "$src" "$dst" ;;
    qemu-img-wb) qemu-img convert -t writeback -f vhdx -O "$qfmt" $qopt "$src" "$dst" ;;
    esac
    end=$(now_ns)
    echo "$tool $target $(((end - start) / 1000))" >>"$work/times"
    if ! qemu-img compare -q -f vhdx -F "$qfmt" "$src" "$dst"; then
        echo "convert.sh: $tool's $target output differs from the source" >&2
        exit 1
    fi
    echo "$tool $target $(du -k "$dst" | cut -f1)" >>"$work/sizes"
}

: >"$work/times"
: >"$work/sizes"
r=0
while [ $r -lt "$runs" ]; do
    for target in vhdx vhd raw; do
        case $((r % 3)) in
        0) order="vmgen qemu-img qemu-img-wb" ;;
        1) order="qemu-img qemu-img-wb vmgen" ;;
        2) order="qemu-img-wb vmgen qemu-img" ;;
        esac
        for tool in $order; do
            run_case "$tool" "$target"
        done
    done
    r=$((r + 1))
    echo "convert.sh: run $r/$runs done" >&2
done

echo "convert-vhd vs qemu-img convert: ${size_mib} MiB dynamic VHDX source (32 MiB blocks, file ${stored_mib} MiB on disk)," \
    "$runs runs (median [min, max] wall seconds); $(uname -sr), $(nproc) CPUs; $(qemu-img --version | head -1)"
echo "qemu-img: default cache mode (no flush of the output); qemu-img -t wb: flushes it, as vmgen does"
echo
awk -v runs="$runs" '
FILENAME ~ /sizes$/ { size[$1 " " $2] = $3; next }
{ key = $1 " " $2; t[key, n[key]++] = $3 / 1e6 }
function med(key,   i, j, m, v, tmp) {
    m = n[key]
    for (i = 0; i < m; i++) v[i] = t[key, i]
    for (i = 1; i < m; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { tmp = v[j]; v[j] = v[j - 1]; v[j - 1] = tmp }
    lo[key] = v[0]; hi[key] = v[m - 1]
    return m % 2 ? v[int(m / 2)] : (v[m / 2 - 1] + v[m / 2]) / 2
}
END {
    printf "%-7s %-22s %-22s %-22s %9s %9s %11s %11s %11s\n", "target", "vmgen s", "qemu-img s", "qemu-img -t wb s",
        "vmgen/", "vmgen/", "vmgen", "qemu-img", "qemu -t wb"
    printf "%-7s %-22s %-22s %-22s %9s %9s %11s %11s %11s\n", "", "", "", "", "qemu-img", "q -t wb", "out MiB", "out MiB",
        "out MiB"
    split("vhdx vhd raw", targets, " ")
    for (k = 1; k <= 3; k++) {
        tg = targets[k]
        v = med("vmgen " tg); q = med("qemu-img " tg); w = med("qemu-img-wb " tg)
        printf "%-7s %-22s %-22s %-22s %9.3f %9.3f %11.1f %11.1f %11.1f\n", tg,
            sprintf("%.3f [%.3f, %.3f]", v, lo["vmgen " tg], hi["vmgen " tg]),
            sprintf("%.3f [%.3f, %.3f]", q, lo["qemu-img " tg], hi["qemu-img " tg]),
            sprintf("%.3f [%.3f, %.3f]", w, lo["qemu-img-wb " tg], hi["qemu-img-wb " tg]),
            v / q, v / w, size["vmgen " tg] / 1024, size["qemu-img " tg] / 1024, size["qemu-img-wb " tg] / 1024
    }
}' "$work/sizes" "$work/times"
