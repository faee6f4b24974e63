#include "vmm/boot/boot_placement.h"

#include "vmm/boot/layout.h"

#include <algorithm>

namespace vmgen::vmm {

namespace {
constexpr uint64_t four_gib = 4ull << 30;
}

Result<uint64_t> boot_ram_end(const vm::GuestMemory& memory)
{
    for (const auto& region : memory.regions()) {
        if (region.gpa == 0 && region.end() > layout::high_memory)
            return std::min(region.end(), four_gib);
    }
    return fail("direct boot needs guest RAM from 0 to beyond 1 MiB in one region");
}

std::string size_text(uint64_t bytes)
{
    constexpr uint64_t kib = 1024;
    constexpr uint64_t mib = kib * 1024;
    if (bytes >= mib)
        return fmt::format("{} MiB", bytes / mib + (bytes % mib != 0 ? 1 : 0));
    if (bytes >= kib)
        return fmt::format("{} KiB", bytes / kib + (bytes % kib != 0 ? 1 : 0));
    return fmt::format("{} bytes", bytes);
}

std::string display_name(std::string_view path, std::string_view what)
{
    if (path.empty())
        return fmt::format("{} (in memory)", what);
    return fmt::format("{} {}", what, path);
}

Result<uint64_t> place_initrd(const vm::GuestMemory& memory, std::span<const uint8_t> initrd, uint64_t floor,
                              uint64_t limit, std::string_view name)
{
    uint64_t size = initrd.size();
    uint64_t available = limit > floor ? limit - floor : 0;
    if (size > available || size > limit) {
        return fail("{} is too big: it needs {} but only {} of guest RAM is free between the kernel's end "
                    "{:#x} and {:#x}",
                    name, size_text(size), size_text(available), floor, limit);
    }
    uint64_t addr = (limit - size) & ~(initrd_alignment - 1);
    if (addr < floor) {
        return fail("{} is too big: it needs {} ({} after 4 KiB alignment) but only {} of guest RAM is free "
                    "between the kernel's end {:#x} and {:#x}",
                    name, size_text(size), size_text(limit - addr), size_text(available), floor, limit);
    }
    TRY_CTX(memory.write(addr, initrd), "writing {} at {:#x}", name, addr);
    return addr;
}

Result<void> write_cmdline(const vm::GuestMemory& memory, std::string_view cmdline, uint64_t max_length,
                           std::string_view kernel_name)
{
    max_length = std::min(max_length, layout::cmdline_max - 1);
    if (cmdline.size() > max_length) {
        return fail("command line is {} bytes long; {} accepts at most {}", cmdline.size(), kernel_name,
                    max_length);
    }
    auto span = TRY_CTX(memory.span(layout::cmdline, cmdline.size() + 1), "writing the command line");
    std::copy(cmdline.begin(), cmdline.end(), span.begin());
    span[cmdline.size()] = 0;
    return {};
}

} // namespace vmgen::vmm
