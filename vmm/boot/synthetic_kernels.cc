#include "vmm/boot/synthetic_kernels.h"

#include "protocols/boot/linux_boot.h"

#include <cstring>

namespace vmgen::vmm::testing {

namespace {

template <typename T>
void store(std::vector<uint8_t>& bytes, uint64_t offset, T value)
{
    if (bytes.size() < offset + sizeof(T))
        bytes.resize(offset + sizeof(T));
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

} // namespace

uint8_t payload_byte(uint64_t i) { return static_cast<uint8_t>((i * 7 + 1) & 0xff); }

std::vector<uint8_t> make_bzimage(const BzImageOptions& o)
{
    namespace lb = protocols::linux_boot;
    uint64_t setup_sects = o.setup_sects != 0 ? o.setup_sects : lb::default_setup_sects;
    uint64_t setup_size = (setup_sects + 1) * lb::sector_size;
    std::vector<uint8_t> image(setup_size + o.payload_size, 0);

    lb::SetupHeader hdr;
    std::memset(&hdr, 0, sizeof(hdr));
    hdr.setup_sects = o.setup_sects;
    hdr.syssize = o.set_syssize ? static_cast<uint32_t>((o.payload_size + 15) / 16) : 0;
    hdr.boot_flag = lb::boot_flag_magic;
    hdr.jump = static_cast<uint16_t>(0xeb | (o.header_length << 8));
    hdr.header = lb::header_magic;
    hdr.version = o.version;
    hdr.loadflags = o.loadflags;
    hdr.code32_start = 0x100000;
    hdr.initrd_addr_max = o.initrd_addr_max;
    hdr.kernel_alignment = o.kernel_alignment;
    hdr.relocatable_kernel = o.relocatable;
    hdr.min_alignment = 21;
    hdr.xloadflags = o.xloadflags;
    hdr.cmdline_size = o.cmdline_size;
    hdr.pref_address = o.pref_address;
    hdr.init_size = o.init_size;
    std::memcpy(image.data() + lb::setup_header_offset, &hdr, sizeof(hdr));
    for (uint64_t i = 0; i < o.payload_size; ++i)
        image[setup_size + i] = payload_byte(i);
    return image;
}

std::vector<uint8_t> make_pvh_elf(const PvhElfOptions& o)
{
    std::vector<uint8_t> f;
    const uint64_t ehdr_size = o.is_64 ? 64 : 52;
    const uint64_t phdr_size = o.is_64 ? 56 : 32;
    const uint64_t phoff = ehdr_size;
    const uint64_t note_offset = phoff + 2 * phdr_size;

    // Notes: an unrelated GNU note, then (optionally) Xen PHYS32_ENTRY.
    std::vector<uint8_t> notes;
    store<uint32_t>(notes, 0, 4);
    store<uint32_t>(notes, 4, 4);
    store<uint32_t>(notes, 8, 3); // NT_GNU_BUILD_ID-like
    store<uint32_t>(notes, 12, 0x00554e47); // "GNU\0"
    store<uint32_t>(notes, 16, 0x12345678);
    if (o.entry_size != 0) {
        store<uint32_t>(notes, 20, 4);
        store<uint32_t>(notes, 24, o.entry_size);
        store<uint32_t>(notes, 28, o.note_type);
        store<uint32_t>(notes, 32, 0x006e6558); // "Xen\0"
        if (o.entry_size == 8)
            store<uint64_t>(notes, 36, o.entry);
        else
            store<uint32_t>(notes, 36, static_cast<uint32_t>(o.entry));
        notes.resize(36 + ((o.entry_size + 3) & ~3u));
    }

    f.assign(elf_segment_offset + o.filesz, 0);
    const uint8_t ident[16] = {0x7f, 'E', 'L', 'F', static_cast<uint8_t>(o.is_64 ? 2 : 1), 1, 1};
    std::memcpy(f.data(), ident, sizeof(ident));
    store<uint16_t>(f, 16, 2); // ET_EXEC
    store<uint16_t>(f, 18, o.is_64 ? 62 : 3);
    store<uint32_t>(f, 20, 1);
    if (o.is_64) {
        store<uint64_t>(f, 24, 0xffffffff81000000ull); // virtual entry: unused by PVH
        store<uint64_t>(f, 32, phoff);
        store<uint16_t>(f, 52, static_cast<uint16_t>(ehdr_size));
        store<uint16_t>(f, 54, static_cast<uint16_t>(phdr_size));
        store<uint16_t>(f, 56, 2);
        // PT_LOAD
        store<uint32_t>(f, phoff + 0, 1);
        store<uint32_t>(f, phoff + 4, 7);
        store<uint64_t>(f, phoff + 8, elf_segment_offset);
        store<uint64_t>(f, phoff + 16, 0xffffffff80000000ull + o.paddr);
        store<uint64_t>(f, phoff + 24, o.paddr);
        store<uint64_t>(f, phoff + 32, o.filesz);
        store<uint64_t>(f, phoff + 40, o.memsz);
        store<uint64_t>(f, phoff + 48, 4096);
        // PT_NOTE
        uint64_t p = phoff + phdr_size;
        store<uint32_t>(f, p + 0, 4);
        store<uint32_t>(f, p + 4, 4);
        store<uint64_t>(f, p + 8, note_offset);
        store<uint64_t>(f, p + 32, notes.size());
        store<uint64_t>(f, p + 40, notes.size());
        store<uint64_t>(f, p + 48, 4);
    } else {
        store<uint32_t>(f, 24, static_cast<uint32_t>(o.entry));
        store<uint32_t>(f, 28, static_cast<uint32_t>(phoff));
        store<uint16_t>(f, 40, static_cast<uint16_t>(ehdr_size));
        store<uint16_t>(f, 42, static_cast<uint16_t>(phdr_size));
        store<uint16_t>(f, 44, 2);
        store<uint32_t>(f, phoff + 0, 1);
        store<uint32_t>(f, phoff + 4, static_cast<uint32_t>(elf_segment_offset));
        store<uint32_t>(f, phoff + 8, static_cast<uint32_t>(o.paddr));
        store<uint32_t>(f, phoff + 12, static_cast<uint32_t>(o.paddr));
        store<uint32_t>(f, phoff + 16, static_cast<uint32_t>(o.filesz));
        store<uint32_t>(f, phoff + 20, static_cast<uint32_t>(o.memsz));
        store<uint32_t>(f, phoff + 24, 7);
        store<uint32_t>(f, phoff + 28, 4096);
        uint64_t p = phoff + phdr_size;
        store<uint32_t>(f, p + 0, 4);
        store<uint32_t>(f, p + 4, static_cast<uint32_t>(note_offset));
        store<uint32_t>(f, p + 16, static_cast<uint32_t>(notes.size()));
        store<uint32_t>(f, p + 20, static_cast<uint32_t>(notes.size()));
        store<uint32_t>(f, p + 28, 4);
    }
    std::memcpy(f.data() + note_offset, notes.data(), notes.size());
    for (uint64_t i = 0; i < o.filesz; ++i)
        f[elf_segment_offset + i] = payload_byte(i);
    return f;
}

} // namespace vmgen::vmm::testing
