// Placement rules shared by the Linux and PVH loaders: where the kernel may live (the low RAM region, at or
// above 1 MiB and below 4 GiB), where the initrd goes (top of low RAM, below the kernel's limit, above the
// kernel) and the command line at layout::cmdline.
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vmgen::vmm {

inline constexpr uint64_t initrd_alignment = 4096;

// End of the RAM usable for direct boot: the RAM region that starts at 0 and extends past 1 MiB, clipped to
// 4 GiB (the 32-bit PVH entry and the boot identity map reach no further).
[[nodiscard]] Result<uint64_t> boot_ram_end(const vm::GuestMemory& memory);

// "12 MiB", "300 KiB", "17 bytes": sizes in error messages, rounded up.
[[nodiscard]] std::string size_text(uint64_t bytes);

// The name used in messages for a file given by path (or an in-memory image when the path is empty).
[[nodiscard]] std::string display_name(std::string_view path, std::string_view what);

// Places a non-empty initrd at the highest 4 KiB-aligned address where it ends at or below `limit` and
// starts at or above `floor` (the end of the kernel), writes it there and returns that address.
[[nodiscard]] Result<uint64_t> place_initrd(const vm::GuestMemory& memory, std::span<const uint8_t> initrd,
                                            uint64_t floor, uint64_t limit, std::string_view name);

// Writes `cmdline` NUL-terminated at layout::cmdline; `max_length` excludes the NUL.
[[nodiscard]] Result<void> write_cmdline(const vm::GuestMemory& memory, std::string_view cmdline,
                                         uint64_t max_length, std::string_view kernel_name);

} // namespace vmgen::vmm
