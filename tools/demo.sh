#!/usr/bin/env bash
# The demo that ./setup.sh runs after building: creates a generation 2 virtual machine (in a store of its
# own under build/, so it never touches your VMs), boots the in-tree demo guest on KVM with COM1 on this
# terminal, and shows the VM before and after. The guest reports what it found and powers off.
set -euo pipefail
cd "$(dirname "$0")/.."

vmgen=build/tools/vmgen/vmgen
guest=build/tests/guests/demo.elf
export VMGEN_HOME=${VMGEN_DEMO_HOME:-$PWD/build/demo-home}

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "demo: /dev/kvm is not accessible to $(id -un): load kvm (modprobe kvm_intel or kvm_amd) or join the kvm group" >&2
  exit 1
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# Start from a clean slate if an earlier demo left its VM behind.
"$vmgen" stop-vm demo --turn-off >/dev/null 2>&1 || true
"$vmgen" remove-vm demo >/dev/null 2>&1 || true

step "$vmgen" new-vm demo --generation 2 --memory 256M --processors 2 --kernel "$guest"
step "$vmgen" set-vmcomport demo --number 1 --path stdio
step "$vmgen" get-vm demo --format json
set +e
step "$vmgen" start-vm demo --wait
status=$?
set -e
step "$vmgen" get-vm demo
if [ "$status" -eq 0 ]; then
  echo
  echo "demo: the generation 2 virtual machine booted, reported its hardware and powered off (exit status 0)."
else
  echo "demo: the virtual machine ended with exit status $status" >&2
  exit "$status"
fi
