// Direct kernel boot: loads a Linux bzImage (64-bit boot protocol) or a PVH ELF kernel, an optional initrd
// and the command line into guest RAM, and returns the vCPU state to enter it with.
//
// Kernel and initrd files are untrusted input: every offset and size is checked, and a bad file gives an
// error naming the file and the problem; nothing is written outside guest RAM.
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"
#include "vmm/boot/boot_spec.h"
#include "vmm/boot/entry_state.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vmgen::vmm {

enum class KernelFormat { BzImage, Elf, Unknown };

// Which loader `kernel` is for: bzImage (0xAA55 at 0x1fe and "HdrS" at 0x202), ELF, or neither.
[[nodiscard]] KernelFormat detect_kernel_format(std::span<const uint8_t> kernel);

// Reads spec.kernel_path (and spec.initrd_path if set) and loads them.
[[nodiscard]] Result<EntryState> load_kernel(const vm::GuestMemory& memory, const BootSpec& spec);

// Loads in-memory images; spec's paths are used only in messages. An empty initrd means none.
[[nodiscard]] Result<EntryState> load_kernel_image(const vm::GuestMemory& memory, std::span<const uint8_t> kernel,
                                                   std::span<const uint8_t> initrd, const BootSpec& spec);

// Reads a whole file of at most `max_bytes`; `what` ("kernel", "initrd") names it in errors.
[[nodiscard]] Result<std::vector<uint8_t>> read_boot_file(const std::string& path, uint64_t max_bytes,
                                                          std::string_view what);

} // namespace vmgen::vmm
