// Loader for PVH kernels: ELF executables with a XEN_ELFNOTE_PHYS32_ENTRY note, entered in 32-bit protected
// mode with EBX pointing at an hvm_start_info (protocols/boot/pvh.h).
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"
#include "vmm/boot/boot_spec.h"
#include "vmm/boot/entry_state.h"

#include <cstdint>
#include <span>

namespace vmgen::vmm {

// Loads the PT_LOAD segments at their physical addresses, the initrd as the single module, the command line,
// the start info with its module list and memory map at layout::pvh_start_info, and the boot GDT; returns the
// 32-bit entry state (RIP = the note's entry, RBX = start info).
[[nodiscard]] Result<EntryState> load_pvh(const vm::GuestMemory& memory, std::span<const uint8_t> elf,
                                          std::span<const uint8_t> initrd, const BootSpec& spec);

} // namespace vmgen::vmm
