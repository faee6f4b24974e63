#include "vmm/boot/memory_map.h"

#include "vmm/boot/layout.h"

#include <algorithm>

namespace vmgen::vmm {

namespace {

// Appends the part of [begin, end) that lies inside [window_begin, window_end), merging with the previous
// entry when contiguous and of the same type.
void add_clipped(std::vector<MemoryMapEntry>& map, uint64_t begin, uint64_t end, uint64_t window_begin,
                 uint64_t window_end, MemoryMapEntry::Type type)
{
    uint64_t lo = std::max(begin, window_begin);
    uint64_t hi = std::min(end, window_end);
    if (lo >= hi)
        return;
    if (!map.empty() && map.back().type == type && map.back().end() == lo) {
        map.back().size += hi - lo;
        return;
    }
    map.push_back(MemoryMapEntry{lo, hi - lo, type});
}

} // namespace

std::vector<MemoryMapEntry> x86_memory_map(const vm::GuestMemory& memory)
{
    using Type = MemoryMapEntry::Type;
    std::vector<MemoryMapEntry> map;
    for (const auto& region : memory.regions()) { // sorted and disjoint (GuestMemory::create)
        uint64_t begin = region.gpa;
        uint64_t end = region.end();
        add_clipped(map, begin, end, 0, layout::ebda_start, Type::Ram);
        add_clipped(map, begin, end, layout::ebda_start, layout::high_memory, Type::Reserved);
        add_clipped(map, begin, end, layout::high_memory, UINT64_MAX, Type::Ram);
    }
    return map;
}

} // namespace vmgen::vmm
