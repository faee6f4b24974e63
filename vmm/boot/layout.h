// Where direct boot puts things in low guest memory (below 1 MiB), shared by the loaders, the ACPI table
// placement and the memory map. The kernel itself goes at or above 1 MiB.
#pragma once

#include <cstdint>

namespace vmgen::vmm::layout {

inline constexpr uint64_t gdt = 0x500;            // boot GDT (a few descriptors)
inline constexpr uint64_t pvh_start_info = 0x6000; // hvm_start_info, then module list and memory map
inline constexpr uint64_t boot_params = 0x7000;   // Linux zero page (4 KiB)
inline constexpr uint64_t page_tables = 0x9000;   // PML4, PDPT, 4 PDs: identity map of the low 4 GiB
inline constexpr uint64_t page_tables_end = 0xf000;
inline constexpr uint64_t cmdline = 0x20000;      // kernel command line
inline constexpr uint64_t cmdline_max = 0x10000;  // PVH bound (Linux's own is in its setup header)
inline constexpr uint64_t ebda_start = 0x9fc00;   // reserved from here to 1 MiB
inline constexpr uint64_t acpi_tables = 0xe0000;  // RSDP first, then the other tables
inline constexpr uint64_t acpi_tables_end = 0x100000;
inline constexpr uint64_t high_memory = 0x100000;

// MMIO
inline constexpr uint64_t mmio_hole_start = 3ull << 30; // RAM above this moves to 4 GiB
inline constexpr uint64_t ioapic = 0xfec00000;
inline constexpr uint64_t local_apic = 0xfee00000;

} // namespace vmgen::vmm::layout
