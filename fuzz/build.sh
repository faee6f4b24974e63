#!/usr/bin/env bash
# Builds the libFuzzer targets (every fuzz/*_fuzz.cc) and the seed corpus generator into build-fuzz/.
#
#   fuzz/build.sh            # needs clang++ (14+) with libFuzzer, and libfmt
#
# Each target links the project sources it needs, compiled with ASan + UBSan. CXX overrides the compiler.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/build-fuzz"
cxx=${CXX:-clang++}
mkdir -p "$out/obj"

common=(-std=gnu++2b -g -O1 -fno-omit-frame-pointer -I"$root"
        -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Werror)
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

# Project sources under test: support, guest memory, the boot loaders (not their tests), the VM config parser,
# the disk formats (raw, VHD, VHDX), the SCSI LUNs, the storvsp controller.
sources=("$root/support/log.cc" "$root/vm/memory/guest_memory.cc" "$root/mgmt/vm_config.cc" "$root/mgmt/scsi_settings.cc"
         "$root/mgmt/vm_settings.cc" "$root/vm/hyperv/partition.cc" "$root/vm/hyperv/cpuid.cc"
         "$root/vm/vmbus/ring_buffer.cc" "$root/vm/vmbus/channel.cc" "$root/vm/vmbus/server.cc"
         "$root/vm/vmbus/echo_device.cc" "$root/vm/vmbus/gpa_direct.cc" "$root/vm/storvsp/storvsp.cc")
for f in "$root"/vmm/boot/*.cc "$root"/vm/disk/*.cc "$root"/vm/disk/*/*.cc "$root"/vm/scsi/*.cc; do
    case "$f" in
    *_test.cc | */synthetic_kernels.cc) ;;
    *) sources+=("$f") ;;
    esac
done

objects=()
for src in "${sources[@]}"; do
    rel=${src#"$root"/}
    obj="$out/obj/${rel//\//_}.o"
    "$cxx" "${common[@]}" "${sanitize[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    objects+=("$obj")
done

for target in "$root"/fuzz/*_fuzz.cc; do
    name=$(basename "$target" .cc)
    echo "building $out/$name"
    "$cxx" "${common[@]}" "${sanitize[@]}" -fsanitize=fuzzer "$target" "${objects[@]}" -lfmt -o "$out/$name"
done

echo "building $out/make_corpus"
"$cxx" "${common[@]}" "${sanitize[@]}" "$root/fuzz/make_corpus.cc" "$root/vmm/boot/synthetic_kernels.cc" \
    "${objects[@]}" -fsanitize=fuzzer-no-link -lfmt -o "$out/make_corpus"
