// GuestMemory: the guest's RAM as a set of host mappings, with bounds-checked access by guest physical
// address (GPA). Every access from device code goes through here, so a GPA the guest names can never reach
// host memory outside its RAM: a range that is not wholly inside one RAM region is an error.
//
// Thread safety: the region list is fixed at creation; the bytes themselves are shared with the guest and
// may change at any time (treat every read as a snapshot, copy before validating).
#pragma once

#include "support/result.h"

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace vmgen::vm {

struct RamRegion {
    uint64_t gpa = 0;
    uint64_t size = 0;
    uint8_t* host = nullptr;

    [[nodiscard]] uint64_t end() const { return gpa + size; }
};

class GuestMemory {
public:
    // Maps anonymous memory for each [gpa, gpa+size) range; ranges must be page aligned and disjoint.
    static Result<GuestMemory> create(std::vector<std::pair<uint64_t, uint64_t>> ranges);
    // The standard x86 layout for `bytes` of RAM: below `hole_start` (default 3 GiB), the rest from 4 GiB.
    static Result<GuestMemory> create_x86(uint64_t bytes, uint64_t hole_start = 3ull << 30);

    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    GuestMemory(GuestMemory&& other) noexcept;
    GuestMemory& operator=(GuestMemory&& other) noexcept;
    ~GuestMemory();

    [[nodiscard]] const std::vector<RamRegion>& regions() const { return m_regions; }
    [[nodiscard]] uint64_t total_bytes() const;
    // Highest RAM address + 1.
    [[nodiscard]] uint64_t end() const;

    // A host view of [gpa, gpa+len), which must lie wholly inside one region.
    [[nodiscard]] Result<std::span<uint8_t>> span(uint64_t gpa, uint64_t len) const;
    [[nodiscard]] bool contains(uint64_t gpa, uint64_t len) const;

    [[nodiscard]] Result<void> read(uint64_t gpa, std::span<uint8_t> out) const;
    [[nodiscard]] Result<void> write(uint64_t gpa, std::span<const uint8_t> in) const;
    [[nodiscard]] Result<void> fill(uint64_t gpa, uint8_t value, uint64_t len) const;

    template <typename T>
        requires std::is_trivially_copyable_v<T>
    [[nodiscard]] Result<T> read_obj(uint64_t gpa) const
    {
        T value;
        TRY(read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
        return value;
    }

    template <typename T>
        requires std::is_trivially_copyable_v<T>
    [[nodiscard]] Result<void> write_obj(uint64_t gpa, const T& value) const
    {
        return write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
    }

private:
    explicit GuestMemory(std::vector<RamRegion> regions) : m_regions(std::move(regions)) {}
    void unmap_all();

    std::vector<RamRegion> m_regions;
};

} // namespace vmgen::vm
