// The guest physical memory map that direct boot reports to the kernel, in E820 terms: used for the Linux
// zero page's e820_table and for the PVH memory map.
#pragma once

#include "vm/memory/guest_memory.h"

#include <cstdint>
#include <vector>

namespace vmgen::vmm {

struct MemoryMapEntry {
    enum class Type : uint32_t { Ram = 1, Reserved = 2, Acpi = 3 }; // E820 numbering
    uint64_t addr = 0;
    uint64_t size = 0;
    Type type = Type::Ram;

    [[nodiscard]] uint64_t end() const { return addr + size; }
    bool operator==(const MemoryMapEntry&) const = default;
};

// The map for `memory`, sorted by address: RAM [0, layout::ebda_start), reserved [ebda_start, 1 MiB) (EBDA,
// ACPI tables at layout::acpi_tables, BIOS area), RAM from 1 MiB to the end of the low region, and every
// further RAM region as RAM. Only addresses backed by RAM are listed.
[[nodiscard]] std::vector<MemoryMapEntry> x86_memory_map(const vm::GuestMemory& memory);

} // namespace vmgen::vmm
