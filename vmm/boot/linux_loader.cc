#include "vmm/boot/linux_loader.h"

#include "protocols/boot/linux_boot.h"
#include "vmm/boot/boot_placement.h"
#include "vmm/boot/cpu_setup.h"
#include "vmm/boot/layout.h"
#include "vmm/boot/memory_map.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vmm {

namespace lb = protocols::linux_boot;

namespace {

constexpr uint64_t header_end_limit = lb::setup_header_offset + sizeof(lb::SetupHeader);
constexpr uint16_t heap_end = 0xfe00; // end of the setup heap, relative to the real-mode code, less 0x200

template <typename T>
T load_le(std::span<const uint8_t> bytes, uint64_t offset)
{
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Where the protected-mode kernel goes and what it occupies.
struct KernelPlacement {
    uint64_t load = 0;      // where the file's protected-mode part is copied; entry at load + 0x200
    uint64_t runtime = 0;   // where the kernel runs (decompresses into), init_size bytes from here
    uint64_t end = 0;       // first byte after everything the kernel occupies
};

bool fits(uint64_t begin, uint64_t size, uint64_t ram_end)
{
    return begin >= layout::high_memory && begin <= ram_end && size <= ram_end - begin;
}

// The setup header copied the way boot.rst's 64-bit protocol asks: from 0x1f1 to 0x202 + the byte at
// 0x201, bounded by what we know of the header. Fields beyond the header's end read as zero.
lb::SetupHeader read_setup_header(std::span<const uint8_t> image)
{
    uint64_t end = lb::jump_offset + 2 + uint64_t{image[lb::jump_offset + 1]};
    end = std::min(end, header_end_limit);
    lb::SetupHeader hdr;
    std::memset(&hdr, 0, sizeof(hdr));
    std::memcpy(&hdr, image.data() + lb::setup_header_offset, end - lb::setup_header_offset);
    return hdr;
}

Result<KernelPlacement> place_kernel(const lb::SetupHeader& hdr, uint64_t kernel_size, uint64_t ram_end,
                                     const std::string& name)
{
    uint64_t init_size = std::max(uint64_t{hdr.init_size}, kernel_size);
    uint64_t pref = hdr.pref_address;
    if (hdr.relocatable_kernel != 0) {
        uint64_t alignment = hdr.kernel_alignment;
        if (!is_power_of_two(alignment))
            return fail("{}: invalid kernel_alignment {:#x} (must be a power of two)", name, alignment);
        // The preferred address when usable, else the lowest aligned address above 1 MiB.
        uint64_t candidates[2] = {pref, (layout::high_memory + alignment - 1) & ~(alignment - 1)};
        for (uint64_t load : candidates) {
            if (load % alignment == 0 && fits(load, init_size, ram_end))
                return KernelPlacement{load, load, load + init_size};
        }
        uint64_t lowest = candidates[1];
        return fail("{} is too big for the VM's RAM: it needs {} (init_size) from {:#x}, but RAM usable for "
                    "direct boot ends at {:#x} ({} available from there)",
                    name, size_text(init_size), lowest, ram_end,
                    size_text(ram_end > lowest ? ram_end - lowest : 0));
    }
    // A non-relocatable kernel is loaded at 1 MiB and moves itself to pref_address (boot.rst pref_address).
    uint64_t runtime = pref != 0 ? pref : layout::high_memory;
    if (runtime < layout::high_memory)
        return fail("{}: non-relocatable kernel wants to run at {:#x}, inside the low boot area below 1 MiB",
                    name, runtime);
    if (!fits(layout::high_memory, kernel_size, ram_end) || !fits(runtime, init_size, ram_end)) {
        uint64_t needed_end = std::max(layout::high_memory + kernel_size, runtime + init_size);
        return fail("{} is too big for the VM's RAM: it needs RAM up to {:#x} ({} from {:#x}, init_size), but "
                    "RAM usable for direct boot ends at {:#x}",
                    name, needed_end, size_text(init_size), runtime, ram_end);
    }
    return KernelPlacement{layout::high_memory, runtime,
                           std::max(layout::high_memory + kernel_size, runtime + init_size)};
}

Result<void> fill_e820(const vm::GuestMemory& memory, lb::BootParams& params)
{
    auto map = x86_memory_map(memory);
    if (map.size() > lb::e820_max_entries)
        return fail("the memory map has {} entries; the zero page holds at most {}", map.size(),
                    lb::e820_max_entries);
    for (size_t i = 0; i < map.size(); ++i) {
        params.e820_table[i].addr = map[i].addr;
        params.e820_table[i].size = map[i].size;
        params.e820_table[i].type = static_cast<uint32_t>(map[i].type);
    }
    params.e820_entries = static_cast<uint8_t>(map.size());
    return {};
}

} // namespace

bool is_bzimage(std::span<const uint8_t> image)
{
    if (image.size() < lb::setup_header_offset + offsetof(lb::SetupHeader, version))
        return false;
    return load_le<uint16_t>(image, lb::setup_header_offset + offsetof(lb::SetupHeader, boot_flag)) ==
               lb::boot_flag_magic &&
           load_le<uint32_t>(image, lb::setup_header_offset + offsetof(lb::SetupHeader, header)) ==
               lb::header_magic;
}

Result<EntryState> load_linux(const vm::GuestMemory& memory, std::span<const uint8_t> image,
                              std::span<const uint8_t> initrd, const BootSpec& spec)
{
    std::string name = display_name(spec.kernel_path, "kernel");
    if (!is_bzimage(image))
        return fail("{} is not a Linux bzImage (no 0xAA55 boot flag and \"HdrS\" header)", name);
    if (image.size() < header_end_limit) {
        return fail("{} is truncated: the setup header ends at {:#x} but the file has only {} bytes", name,
                    header_end_limit, image.size());
    }
    const lb::SetupHeader hdr = read_setup_header(image);

    uint16_t version = hdr.version;
    if (version < lb::version_2_12) {
        return fail("{} uses boot protocol {}.{:02}; the 64-bit entry needs 2.12 or later", name, version >> 8,
                    version & 0xff);
    }
    if ((hdr.xloadflags & lb::xlf_kernel_64) == 0)
        return fail("{} has no 64-bit entry point (XLF_KERNEL_64 is clear in xloadflags)", name);
    if ((hdr.loadflags & lb::loadflag_loaded_high) == 0)
        return fail("{} is not a bzImage (LOADED_HIGH is clear: a zImage loaded at 0x10000)", name);

    uint64_t setup_sects = hdr.setup_sects != 0 ? hdr.setup_sects : lb::default_setup_sects;
    uint64_t setup_size = (setup_sects + 1) * lb::sector_size;
    if (image.size() <= setup_size) {
        return fail("{} is truncated: its setup code takes {} bytes but the file has only {}", name, setup_size,
                    image.size());
    }
    std::span<const uint8_t> kernel = image.subspan(setup_size);
    uint64_t declared = uint64_t{hdr.syssize} * 16;
    if (declared > kernel.size() + 15) {
        return fail("{} is truncated: the setup header declares {} bytes of protected-mode code but the file "
                    "has {}",
                    name, declared, kernel.size());
    }

    uint64_t ram_end = TRY_CTX(boot_ram_end(memory), "loading {}", name);
    KernelPlacement placement = TRY(place_kernel(hdr, kernel.size(), ram_end, name));
    TRY(write_cmdline(memory, spec.cmdline, hdr.cmdline_size, name));
    TRY_CTX(memory.write(placement.load, kernel), "writing {} at {:#x}", name, placement.load);

    uint64_t initrd_addr = 0;
    if (!initrd.empty()) {
        uint64_t limit = std::min(uint64_t{hdr.initrd_addr_max} + 1, ram_end);
        initrd_addr = TRY(place_initrd(memory, initrd, placement.end, limit,
                                       display_name(spec.initrd_path, "initrd")));
    }

    lb::BootParams params;
    std::memset(&params, 0, sizeof(params));
    params.hdr = hdr;
    params.hdr.type_of_loader = lb::loader_type_undefined;
    params.hdr.loadflags = static_cast<uint8_t>(hdr.loadflags | lb::loadflag_loaded_high |
                                                lb::loadflag_can_use_heap);
    params.hdr.heap_end_ptr = heap_end;
    params.hdr.code32_start = static_cast<uint32_t>(placement.load);
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(layout::cmdline);
    params.ext_cmd_line_ptr = static_cast<uint32_t>(layout::cmdline >> 32);
    params.hdr.ramdisk_image = static_cast<uint32_t>(initrd_addr);
    params.ext_ramdisk_image = static_cast<uint32_t>(initrd_addr >> 32);
    params.hdr.ramdisk_size = static_cast<uint32_t>(initrd.size());
    params.ext_ramdisk_size = static_cast<uint32_t>(uint64_t{initrd.size()} >> 32);
    params.acpi_rsdp_addr = spec.rsdp_gpa;
    TRY(fill_e820(memory, params));
    TRY_CTX(memory.write_obj(layout::boot_params, params), "writing the zero page");

    return long64_entry(memory, placement.load + lb::entry64_offset, layout::boot_params);
}

} // namespace vmgen::vmm
