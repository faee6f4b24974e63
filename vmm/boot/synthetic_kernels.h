// Small synthetic kernel images for the boot tests and the fuzz seed corpus: a bzImage with a setup header
// and a PVH ELF (ELF32 or ELF64) with one PT_LOAD segment and a Xen PHYS32_ENTRY note. Not linked into
// vmgen_boot.
#pragma once

#include <cstdint>
#include <vector>

namespace vmgen::vmm::testing {

inline constexpr uint64_t mib = 1ull << 20;

// The byte the synthetic payloads carry at offset i (so tests can check placement).
[[nodiscard]] uint8_t payload_byte(uint64_t i);

struct BzImageOptions {
    uint16_t version = 0x020f;
    uint8_t setup_sects = 4;
    uint8_t header_length = 0x6a;  // byte at 0x201: the header ends at 0x202 + this (0x26c)
    uint8_t loadflags = 0x01;      // LOADED_HIGH
    uint16_t xloadflags = 0x03;    // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    uint8_t relocatable = 1;
    uint32_t kernel_alignment = 2 * mib;
    uint64_t pref_address = 16 * mib;
    uint32_t init_size = 4 * mib;
    uint32_t initrd_addr_max = 0x7fffffff;
    uint32_t cmdline_size = 2048;
    uint64_t payload_size = 8192; // protected-mode kernel bytes after the setup sectors
    bool set_syssize = true;
};

[[nodiscard]] std::vector<uint8_t> make_bzimage(const BzImageOptions& options = {});

struct PvhElfOptions {
    bool is_64 = true;
    uint64_t paddr = 2 * mib;
    uint64_t filesz = 4096;
    uint64_t memsz = 8192;
    uint64_t entry = 2 * mib + 0x40;
    uint32_t entry_size = 4;    // 4 or 8: the note's descriptor size; 0: no Xen note at all
    uint32_t note_type = 18;    // XEN_ELFNOTE_PHYS32_ENTRY
};

// Layout: ELF header, two program headers (PT_LOAD, PT_NOTE), a GNU note then the Xen note, then the
// segment's file bytes at offset segment_offset.
inline constexpr uint64_t elf_segment_offset = 0x200;
[[nodiscard]] std::vector<uint8_t> make_pvh_elf(const PvhElfOptions& options = {});

} // namespace vmgen::vmm::testing
