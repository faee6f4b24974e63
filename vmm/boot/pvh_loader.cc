#include "vmm/boot/pvh_loader.h"

#include "protocols/boot/pvh.h"
#include "vmm/boot/boot_placement.h"
#include "vmm/boot/cpu_setup.h"
#include "vmm/boot/elf_image.h"
#include "vmm/boot/layout.h"
#include "vmm/boot/memory_map.h"

#include <algorithm>
#include <cstring>
#include <optional>

namespace vmgen::vmm {

namespace pvh = protocols::pvh;

namespace {

constexpr uint64_t start_info_area_end = layout::boot_params; // start info, module list, memory map

Result<uint64_t> find_entry(std::span<const uint8_t> file, const ElfImage& image, const std::string& name)
{
    std::optional<uint64_t> entry;
    for (const auto& segment : image.segments) {
        if (segment.type != elf_pt_note)
            continue;
        auto notes = TRY(parse_elf_notes(file, segment, name));
        for (const auto& note : notes) {
            if (note.name != "Xen" || note.type != pvh::elfnote_phys32_entry)
                continue;
            if (note.desc.size() == 4) {
                uint32_t value;
                std::memcpy(&value, note.desc.data(), sizeof(value));
                entry = value;
            } else if (note.desc.size() == 8) {
                uint64_t value;
                std::memcpy(&value, note.desc.data(), sizeof(value));
                entry = value;
            } else {
                return fail("{}: XEN_ELFNOTE_PHYS32_ENTRY note has {} bytes of data, expected 4 or 8", name,
                            note.desc.size());
            }
        }
    }
    if (!entry)
        return fail("{} has no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel", name);
    return *entry;
}

// Checks every PT_LOAD segment's placement and returns the end of the highest one.
Result<uint64_t> check_segments(const ElfImage& image, uint64_t ram_end, uint64_t entry, const std::string& name)
{
    uint64_t kernel_end = 0;
    bool entry_loaded = false;
    for (size_t i = 0; i < image.segments.size(); ++i) {
        const ElfSegment& s = image.segments[i];
        if (s.type != elf_pt_load || s.memsz == 0)
            continue;
        if (s.paddr < layout::high_memory) {
            return fail("{}: segment {} at {:#x} overlaps the low boot area below 1 MiB", name, i, s.paddr);
        }
        if (s.paddr >= ram_end || s.memsz > ram_end - s.paddr) {
            uint64_t needed = s.paddr + s.memsz < s.paddr ? UINT64_MAX : s.paddr + s.memsz;
            return fail("{} is too big for the VM's RAM: segment {} [{:#x}, {:#x}) needs RAM up to {:#x} ({} more "
                        "than the {} usable for direct boot)",
                        name, i, s.paddr, needed, needed, size_text(needed > ram_end ? needed - ram_end : 0),
                        size_text(ram_end));
        }
        kernel_end = std::max(kernel_end, s.paddr + s.memsz);
        if (entry >= s.paddr && entry - s.paddr < s.memsz)
            entry_loaded = true;
    }
    if (kernel_end == 0)
        return fail("{} has no loadable segments", name);
    if (!entry_loaded)
        return fail("{}: PVH entry point {:#x} is not inside a loaded segment", name, entry);
    return kernel_end;
}

Result<void> write_start_info(const vm::GuestMemory& memory, const BootSpec& spec, uint64_t initrd_addr,
                              uint64_t initrd_size)
{
    auto map = x86_memory_map(memory);
    uint64_t modlist = layout::pvh_start_info + sizeof(pvh::StartInfo);
    uint64_t modules = initrd_size != 0 ? 1 : 0;
    uint64_t memmap = modlist + modules * sizeof(pvh::ModlistEntry);
    uint64_t end = memmap + map.size() * sizeof(pvh::MemmapEntry);
    if (end > start_info_area_end) {
        return fail("the memory map has {} entries, more than fit in the PVH start info area ({:#x}-{:#x})",
                    map.size(), layout::pvh_start_info, start_info_area_end);
    }

    pvh::StartInfo info{};
    info.magic = pvh::start_info_magic;
    info.version = 1;
    info.nr_modules = static_cast<uint32_t>(modules);
    info.modlist_paddr = modules != 0 ? modlist : 0;
    info.cmdline_paddr = layout::cmdline;
    info.rsdp_paddr = spec.rsdp_gpa;
    info.memmap_paddr = memmap;
    info.memmap_entries = static_cast<uint32_t>(map.size());
    TRY_CTX(memory.write_obj(layout::pvh_start_info, info), "writing the PVH start info");

    if (modules != 0) {
        pvh::ModlistEntry module{};
        module.paddr = initrd_addr;
        module.size = initrd_size;
        TRY_CTX(memory.write_obj(modlist, module), "writing the PVH module list");
    }
    for (size_t i = 0; i < map.size(); ++i) {
        pvh::MemmapEntry entry{};
        entry.addr = map[i].addr;
        entry.size = map[i].size;
        entry.type = static_cast<uint32_t>(map[i].type);
        TRY_CTX(memory.write_obj(memmap + i * sizeof(entry), entry), "writing the PVH memory map");
    }
    return {};
}

} // namespace

Result<EntryState> load_pvh(const vm::GuestMemory& memory, std::span<const uint8_t> elf,
                            std::span<const uint8_t> initrd, const BootSpec& spec)
{
    std::string name = display_name(spec.kernel_path, "kernel");
    ElfImage image = TRY(parse_elf(elf, name));
    uint64_t entry = TRY(find_entry(elf, image, name));
    if (entry > UINT32_MAX)
        return fail("{}: PVH entry point {:#x} is above 4 GiB", name, entry);
    uint64_t ram_end = TRY_CTX(boot_ram_end(memory), "loading {}", name);
    uint64_t kernel_end = TRY(check_segments(image, ram_end, entry, name));
    TRY(write_cmdline(memory, spec.cmdline, layout::cmdline_max - 1, name));

    for (const auto& s : image.segments) {
        if (s.type != elf_pt_load || s.memsz == 0)
            continue;
        TRY_CTX(memory.write(s.paddr, elf.subspan(s.offset, s.filesz)), "writing {} segment at {:#x}", name,
                s.paddr);
        if (!spec.ram_is_zero)
            TRY_CTX(memory.fill(s.paddr + s.filesz, 0, s.memsz - s.filesz), "clearing {} segment at {:#x}", name,
                    s.paddr);
    }

    uint64_t initrd_addr = 0;
    if (!initrd.empty())
        initrd_addr = TRY(place_initrd(memory, initrd, kernel_end, ram_end, display_name(spec.initrd_path, "initrd")));
    TRY(write_start_info(memory, spec, initrd_addr, initrd.size()));
    return protected32_entry(memory, entry, layout::pvh_start_info);
}

} // namespace vmgen::vmm
