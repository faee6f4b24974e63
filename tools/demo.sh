#!/usr/bin/env bash
# The demo that ./setup.sh runs after building: creates a generation 2 virtual machine (in a store of its
# own under build/, so it never touches your VMs), gives it a new dynamic VHDX hard disk and a DVD drive with a
# small ISO image (made with xorriso; an empty drive without it) on its SCSI controller, boots the in-tree demo
# guest on KVM with COM1 on this terminal, and shows the VM before and after. The guest reports what it found
# (its storage through VMBus) and powers off.
#   VMGEN_DEMO_HOME   the store to use (default: build/demo-home)
#   VMGEN_DEMO_BUILD  the build directory with vmgen and the guests (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${VMGEN_DEMO_BUILD:-build}
vmgen=$build/tools/vmgen/vmgen
guest=$build/tests/guests/demo.elf
case $build in /*) default_home=$build/demo-home ;; *) default_home=$PWD/$build/demo-home ;; esac
export VMGEN_HOME=${VMGEN_DEMO_HOME:-$default_home}
disk=$VMGEN_HOME/demo.vhdx
iso=$VMGEN_HOME/demo.iso

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "demo: /dev/kvm is not accessible to $(id -un): load kvm (modprobe kvm_intel or kvm_amd) or join the kvm group" >&2
  exit 1
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Start from a clean slate if an earlier demo left its VM or its disk images behind.
"$vmgen" stop-vm demo --turn-off >/dev/null 2>&1 || true
"$vmgen" remove-vm demo >/dev/null 2>&1 || true
rm -f "$disk" "$iso"

step "$vmgen" new-vm demo --generation 2 --memory 256M --processors 2 --kernel "$guest"
step "$vmgen" set-vmcomport demo --number 1 --path stdio
step "$vmgen" new-vhd "$disk" --size 64M
step "$vmgen" add-vmharddiskdrive demo --path "$disk"
dvd_note=""
if command -v xorriso >/dev/null 2>&1; then
  mkdir "$scratch/iso"
  echo "Hello from the DVD of the vmgen demo." >"$scratch/iso/README.TXT"
  if ! xorriso -as mkisofs -quiet -V VMGEN-DEMO -o "$iso" "$scratch/iso" >"$scratch/xorriso.log" 2>&1; then
    cat "$scratch/xorriso.log" >&2
    rm -f "$iso"
    dvd_note="demo: xorriso could not make the ISO image, so the DVD drive stays empty"
  fi
else
  dvd_note="demo: xorriso is not installed, so the DVD drive stays empty"
fi
if [ -z "$dvd_note" ]; then
  step "$vmgen" add-vmdvddrive demo --path "$iso"
else
  echo; echo "$dvd_note"
  step "$vmgen" add-vmdvddrive demo
fi
step "$vmgen" get-vm demo --format json
step "$vmgen" get-vmharddiskdrive demo
step "$vmgen" get-vmdvddrive demo
set +e
step "$vmgen" start-vm demo --wait | tee "$scratch/com1.txt"
status=${PIPESTATUS[0]}
set -e
step "$vmgen" get-vm demo
if [ "$status" -ne 0 ]; then
  echo "demo: the virtual machine ended with exit status $status" >&2
  exit "$status"
fi
if ! grep -q '^vmgen-guest: result PASS' "$scratch/com1.txt"; then
  echo "demo: the virtual machine powered off, but the guest reported a failure (its result line above)" >&2
  exit 1
fi
echo
echo "demo: the generation 2 virtual machine booted, reported its hardware and storage and powered off (exit status 0)."
