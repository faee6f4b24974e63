// The PVH boot protocol (x86): the VMM enters a 32-bit kernel entry point named by an ELF note, with
// EBX pointing at an hvm_start_info structure.
// Reference: Xen public header xen/include/public/arch-x86/hvm/start_info.h (version 1 layout) and
// xen/include/public/elfnote.h (XEN_ELFNOTE_PHYS32_ENTRY). Little-endian, packed as in the header.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::pvh {

inline constexpr uint32_t start_info_magic = 0x336ec578;
inline constexpr uint32_t elfnote_phys32_entry = 18; // XEN_ELFNOTE_PHYS32_ENTRY, note name "Xen"

// hvm_memmap_table_entry.type values (E820 numbering).
inline constexpr uint32_t memmap_type_ram = 1;
inline constexpr uint32_t memmap_type_reserved = 2;
inline constexpr uint32_t memmap_type_acpi = 3;

struct StartInfo { // struct hvm_start_info
    uint32_t magic;           // start_info_magic
    uint32_t version;         // 1: memmap fields present
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;   // array of ModlistEntry
    uint64_t cmdline_paddr;   // NUL-terminated
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;    // array of MemmapEntry (version >= 1)
    uint32_t memmap_entries;
    uint32_t reserved;
};
static_assert(sizeof(StartInfo) == 56);
static_assert(offsetof(StartInfo, modlist_paddr) == 16);
static_assert(offsetof(StartInfo, rsdp_paddr) == 32);
static_assert(offsetof(StartInfo, memmap_entries) == 48);

struct ModlistEntry { // struct hvm_modlist_entry
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
static_assert(sizeof(ModlistEntry) == 32);

struct MemmapEntry { // struct hvm_memmap_table_entry
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
static_assert(sizeof(MemmapEntry) == 24);

} // namespace vmgen::protocols::pvh
