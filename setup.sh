#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for vmgen, builds everything, then runs the demo: creates a
# generation 2 virtual machine, boots the in-tree demo guest on KVM and prints what the guest found.
#   ./setup.sh            install packages (apt-get), build, run the demo
#   ./setup.sh --no-demo  install and build only
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake ninja-build pkg-config
  libfmt-dev nlohmann-json3-dev libcli11-dev libgtest-dev googletest
  acpica-tools              # iasl: ACPI tables are checked by disassembling them
  qemu-system-x86 qemu-utils # the peer VMM for cross-checks and benchmarks
  xorriso                   # ISO images for the DVD tests
  clang libclang-rt-14-dev  # libFuzzer targets
  hyperfine procps
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

if [ "${1:-}" != "--no-demo" ]; then
  exec ./tools/demo.sh
fi
