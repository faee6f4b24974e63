// libFuzzer target: the GPA-direct (type 9) range list parser and the zero-copy accessors built on it.
//
// Input: [u32 window offset][u32 window length][u8 flags][header bytes ...]; flags bits 0-6: iovec cap (0: the
// default), bit 7: fold every PFN into [0, 48) and parse again, so that most accepted headers reach guest pages.
// The header is parsed as a type-9 packet's range list; when accepted, the ranges are validated, turned into
// iovecs and copied to and from over a small guest memory with a hole ([0, 64 KiB) and [128 KiB, 192 KiB): PFNs
// 0-15 and 32-47). Every span handed out must lie inside a RAM region's host mapping (checked explicitly, and by
// ASan when written). A crash, sanitizer report or abort is a bug; error Results are the expected answer to junk.
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/gpa_direct.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

namespace {

const vmgen::vm::GuestMemory& guest_memory()
{
    static vmgen::vm::GuestMemory* memory = [] {
        auto created = vmgen::vm::GuestMemory::create({{0, 64ull << 10}, {128ull << 10, 64ull << 10}});
        if (!created)
            std::abort();
        return new vmgen::vm::GuestMemory(std::move(*created));
    }();
    return *memory;
}

// The span must lie wholly inside one region's host mapping, or span host-adjacent regions.
bool inside_guest_ram(const uint8_t* base, size_t len)
{
    auto addr = reinterpret_cast<uintptr_t>(base);
    uintptr_t end = addr + len;
    for (;;) {
        bool advanced = false;
        for (const auto& r : guest_memory().regions()) {
            auto start = reinterpret_cast<uintptr_t>(r.host);
            if (addr >= start && addr < start + r.size) {
                if (end <= start + r.size)
                    return true;
                addr = start + r.size; // continues into a host-adjacent region, if any
                advanced = true;
                break;
            }
        }
        if (!advanced)
            return false;
    }
}

uint32_t load32(const uint8_t* p)
{
    uint32_t v = 0;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace vmgen::vm::vmbus;
    if (size < 9)
        return 0;
    const auto& memory = guest_memory();
    uint64_t offset_in = load32(data);
    uint64_t length_in = load32(data + 4);
    size_t cap = (data[8] & 0x7f) == 0 ? max_gpa_iovecs : (data[8] & 0x7f);
    std::span<const uint8_t> header(data + 9, size - 9);

    auto parsed = parse_gpa_direct(header);
    if (!parsed)
        return 0;
    std::vector<uint8_t> folded;
    if (data[8] & 0x80) {
        // Fold every PFN into [0, 48) (RAM, the hole, RAM) and parse again, so that most accepted headers
        // reach guest pages.
        folded.assign(header.begin(), header.end());
        size_t pos = 8;
        for (const auto& r : parsed->ranges()) {
            pos += 8;
            for (uint32_t i = 0; i < r.pfn_count; ++i, pos += 8) {
                uint64_t pfn = 0;
                std::memcpy(&pfn, folded.data() + pos, sizeof(pfn));
                pfn %= 48;
                std::memcpy(folded.data() + pos, &pfn, sizeof(pfn));
            }
        }
        header = folded;
        parsed = parse_gpa_direct(header);
        if (!parsed)
            std::abort(); // PFNs were the only change
    }
    const GpaRanges& g = *parsed;

    // Shape invariants of an accepted header.
    uint64_t sum = 0;
    size_t pfn_total = 0;
    for (const auto& r : g.ranges()) {
        if (r.byte_count == 0 || r.byte_offset >= gpa_page_size || r.transfer_offset != sum)
            std::abort();
        if (r.pfn_count != (uint64_t {r.byte_offset} + r.byte_count + gpa_page_size - 1) / gpa_page_size)
            std::abort();
        if (g.pfns(r).size() != r.pfn_count)
            std::abort();
        sum += r.byte_count;
        pfn_total += r.pfn_count;
    }
    if (g.ranges().empty() || sum != g.total_bytes() || sum > max_gpa_transfer_bytes ||
        pfn_total != g.all_pfns().size() || pfn_total * sizeof(uint64_t) > header.size())
        std::abort();

    bool all_valid = static_cast<bool>(g.validate(memory));

    // Windows: one from the input (often out of bounds), one clamped into the transfer, and the whole transfer.
    uint64_t total = g.total_bytes();
    uint64_t offset = offset_in % (total + 1);
    uint64_t length = std::min<uint64_t>(length_in % (total - offset + 1), 1u << 20);
    const std::pair<uint64_t, uint64_t> windows[] = {
        {offset_in, length_in}, {offset, length}, {0, std::min<uint64_t>(total, 1u << 20)}};
    for (auto [o, l] : windows) {
        bool in_window = o <= total && l <= total - o;
        auto iov = g.iovecs(memory, o, l, cap);
        if (iov) {
            if (!in_window || iov->size() > cap)
                std::abort();
            uint64_t covered = 0;
            for (const auto& v : *iov) {
                if (v.iov_len == 0 || !inside_guest_ram(static_cast<const uint8_t*>(v.iov_base), v.iov_len))
                    std::abort();
                std::memset(v.iov_base, 0x5a, v.iov_len); // ASan reports any byte outside the mappings
                covered += v.iov_len;
            }
            if (covered != l)
                std::abort();
        } else if (in_window && all_valid && pfn_total <= cap) {
            // Valid pages, in the window, and at least one iovec per page allowed: must not fail.
            std::abort();
        }
        if (!in_window || l > (1u << 20))
            continue;
        std::vector<uint8_t> out(l);
        for (size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<uint8_t>(i ^ 0xa5);
        auto to = g.copy_to_guest(memory, o, out);
        std::vector<uint8_t> back(l);
        auto from = g.copy_from_guest(memory, o, back);
        if (static_cast<bool>(to) != static_cast<bool>(from))
            std::abort();
        if (all_valid && !to)
            std::abort();
    }
    return 0;
}
