// Loader for Linux bzImage kernels through the 64-bit boot protocol (Documentation/x86/boot.rst).
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"
#include "vmm/boot/boot_spec.h"
#include "vmm/boot/entry_state.h"

#include <cstdint>
#include <span>

namespace vmgen::vmm {

// True if `image` carries the bzImage signatures: boot_flag 0xAA55 at 0x1fe and "HdrS" at 0x202.
[[nodiscard]] bool is_bzimage(std::span<const uint8_t> image);

// Loads the protected-mode kernel, the initrd (if not empty), the command line and the zero page, builds the
// identity page tables and GDT, and returns the 64-bit entry state (RIP = load address + 0x200, RSI = zero
// page). Every field of the image is validated; errors name the kernel (spec.kernel_path).
[[nodiscard]] Result<EntryState> load_linux(const vm::GuestMemory& memory, std::span<const uint8_t> image,
                                            std::span<const uint8_t> initrd, const BootSpec& spec);

} // namespace vmgen::vmm
