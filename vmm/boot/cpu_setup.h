// The boot vCPU environment shared by the direct-boot loaders: the boot GDT at layout::gdt, the identity
// page tables at layout::page_tables, and the EntryState for 32-bit protected mode (PVH) and 64-bit long
// mode (Linux 64-bit boot protocol).
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"
#include "vmm/boot/entry_state.h"

#include <cstdint>

namespace vmgen::vmm {

// Control register and EFER bits used at entry.
inline constexpr uint64_t cr0_pe = 1ull << 0;
inline constexpr uint64_t cr0_et = 1ull << 4;
inline constexpr uint64_t cr0_pg = 1ull << 31;
inline constexpr uint64_t cr4_pae = 1ull << 5;
inline constexpr uint64_t efer_lme = 1ull << 8;
inline constexpr uint64_t efer_lma = 1ull << 10;

// Page table entry bits.
inline constexpr uint64_t pte_present = 1ull << 0;
inline constexpr uint64_t pte_writable = 1ull << 1;
inline constexpr uint64_t pte_large = 1ull << 7;

// Boot selectors: boot.rst's __BOOT_CS / __BOOT_DS, also used for PVH.
inline constexpr uint16_t boot_code_selector = 0x10;
inline constexpr uint16_t boot_data_selector = 0x18;
inline constexpr uint16_t boot_gdt_entries = 4; // null, unused, code, data
// Initial stack top: the free page between the zero page and the page tables.
inline constexpr uint64_t boot_stack_top = 0x9000;

// The identity map covers [0, 4 GiB) with 2 MiB pages.
inline constexpr uint64_t identity_map_end = 4ull << 30;

// Encodes a flat segment as a GDT descriptor (base 0, limit 4 GiB, 4 KiB granularity).
[[nodiscard]] uint64_t gdt_descriptor(const FlatSegment& segment);

// Writes the GDT for `code`/`data` at layout::gdt and returns the entry state skeleton for it.
[[nodiscard]] Result<EntryState> protected32_entry(const vm::GuestMemory& memory, uint64_t rip, uint64_t rbx);

// Writes the GDT and the 4 GiB identity map (PML4 -> PDPT -> 4 PDs of 2 MiB pages) and returns the long
// mode entry state.
[[nodiscard]] Result<EntryState> long64_entry(const vm::GuestMemory& memory, uint64_t rip, uint64_t rsi);

} // namespace vmgen::vmm
