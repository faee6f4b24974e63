#include "vm/memory/guest_memory.h"

#include "support/errno_error.h"

#include <sys/mman.h>

#include <algorithm>

namespace vmgen::vm {

namespace {
constexpr uint64_t page_size = 4096;
}

Result<GuestMemory> GuestMemory::create(std::vector<std::pair<uint64_t, uint64_t>> ranges)
{
    std::sort(ranges.begin(), ranges.end());
    std::vector<RamRegion> regions;
    GuestMemory memory(std::move(regions));
    uint64_t previous_end = 0;
    for (auto [gpa, size] : ranges) {
        if (size == 0 || gpa % page_size != 0 || size % page_size != 0)
            return fail("RAM range {:#x}+{:#x} is empty or not page aligned", gpa, size);
        if (gpa < previous_end || gpa + size < gpa)
            return fail("RAM range {:#x}+{:#x} overlaps another", gpa, size);
        void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (host == MAP_FAILED)
            return errno_failure(fmt::format("mapping {} MiB of guest RAM", size >> 20));
        ::madvise(host, size, MADV_DONTDUMP);
        memory.m_regions.push_back(RamRegion{gpa, size, static_cast<uint8_t*>(host)});
        previous_end = gpa + size;
    }
    return memory;
}

Result<GuestMemory> GuestMemory::create_x86(uint64_t bytes, uint64_t hole_start)
{
    if (bytes == 0 || bytes % page_size != 0)
        return fail("guest RAM size {} is not a positive multiple of 4 KiB", bytes);
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    uint64_t low = std::min(bytes, hole_start);
    ranges.emplace_back(0, low);
    if (bytes > low)
        ranges.emplace_back(4ull << 30, bytes - low);
    return create(std::move(ranges));
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept : m_regions(std::move(other.m_regions))
{
    other.m_regions.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept
{
    if (this != &other) {
        unmap_all();
        m_regions = std::move(other.m_regions);
        other.m_regions.clear();
    }
    return *this;
}

GuestMemory::~GuestMemory() { unmap_all(); }

void GuestMemory::unmap_all()
{
    for (auto& r : m_regions)
        ::munmap(r.host, r.size);
    m_regions.clear();
}

uint64_t GuestMemory::total_bytes() const
{
    uint64_t total = 0;
    for (auto& r : m_regions)
        total += r.size;
    return total;
}

uint64_t GuestMemory::end() const { return m_regions.empty() ? 0 : m_regions.back().end(); }

bool GuestMemory::contains(uint64_t gpa, uint64_t len) const
{
    if (gpa + len < gpa)
        return false;
    return std::any_of(m_regions.begin(), m_regions.end(),
                       [&](const RamRegion& r) { return gpa >= r.gpa && gpa + len <= r.end(); });
}

Result<std::span<uint8_t>> GuestMemory::span(uint64_t gpa, uint64_t len) const
{
    if (gpa + len >= gpa) {
        for (auto& r : m_regions) {
            if (gpa >= r.gpa && gpa + len <= r.end())
                return std::span<uint8_t>(r.host + (gpa - r.gpa), len);
        }
    }
    return fail("guest range {:#x}+{:#x} is outside guest RAM", gpa, len);
}

Result<void> GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const
{
    auto s = TRY(span(gpa, out.size()));
    std::memcpy(out.data(), s.data(), out.size());
    return {};
}

Result<void> GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) const
{
    auto s = TRY(span(gpa, in.size()));
    std::memcpy(s.data(), in.data(), in.size());
    return {};
}

Result<void> GuestMemory::fill(uint64_t gpa, uint8_t value, uint64_t len) const
{
    auto s = TRY(span(gpa, len));
    std::memset(s.data(), value, len);
    return {};
}

} // namespace vmgen::vm
