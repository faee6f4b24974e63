// The Linux/x86 boot protocol: the setup header a bzImage carries at offset 0x1f1 and the "zero page"
// (struct boot_params) the boot loader fills for the 32- and 64-bit entry points.
// Reference: Linux Documentation/x86/boot.rst ("The Real-Mode Kernel Header", "Details of Header Fields",
// "64-bit Boot Protocol") and Documentation/x86/zero-page.rst. Little-endian, packed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::linux_boot {

inline constexpr uint64_t setup_header_offset = 0x1f1; // in the kernel image and in boot_params
inline constexpr uint64_t sector_size = 512;           // boot.rst: "a sector" is always 512 bytes
inline constexpr uint8_t default_setup_sects = 4;      // setup_sects == 0 means 4
inline constexpr uint16_t boot_flag_magic = 0xaa55;    // at 0x1fe
inline constexpr uint32_t header_magic = 0x53726448;   // "HdrS" at 0x202
inline constexpr uint64_t jump_offset = 0x200;         // the header ends at 0x202 + byte at 0x201
inline constexpr uint64_t entry64_offset = 0x200;      // 64-bit entry: load address + 0x200
inline constexpr uint32_t legacy_initrd_addr_max = 0x37ffffff; // protocol < 2.03
inline constexpr uint32_t legacy_cmdline_size = 255;           // protocol < 2.06
inline constexpr uint8_t loader_type_undefined = 0xff;         // type_of_loader: no assigned id

// Protocol versions (the "version" field), boot.rst's table of protocol versions.
inline constexpr uint16_t version_2_03 = 0x0203; // initrd_addr_max
inline constexpr uint16_t version_2_05 = 0x0205; // relocatable_kernel, kernel_alignment
inline constexpr uint16_t version_2_06 = 0x0206; // cmdline_size
inline constexpr uint16_t version_2_10 = 0x020a; // pref_address, init_size, min_alignment
inline constexpr uint16_t version_2_12 = 0x020c; // xloadflags, ext_ fields: the 64-bit protocol

// loadflags (boot.rst "Field name: loadflags").
inline constexpr uint8_t loadflag_loaded_high = 1u << 0;
inline constexpr uint8_t loadflag_kaslr = 1u << 1;
inline constexpr uint8_t loadflag_quiet = 1u << 5;
inline constexpr uint8_t loadflag_keep_segments = 1u << 6;
inline constexpr uint8_t loadflag_can_use_heap = 1u << 7;

// xloadflags (boot.rst "Field name: xloadflags").
inline constexpr uint16_t xlf_kernel_64 = 1u << 0;
inline constexpr uint16_t xlf_can_be_loaded_above_4g = 1u << 1;
inline constexpr uint16_t xlf_efi_handover_32 = 1u << 2;
inline constexpr uint16_t xlf_efi_handover_64 = 1u << 3;
inline constexpr uint16_t xlf_efi_kexec = 1u << 4;

// Selectors the 32- and 64-bit entry points expect (boot.rst: __BOOT_CS, __BOOT_DS).
inline constexpr uint16_t boot_cs = 0x10;
inline constexpr uint16_t boot_ds = 0x18;

// E820 memory types (zero-page.rst e820_table; ACPI "Address Range Types").
inline constexpr uint32_t e820_ram = 1;
inline constexpr uint32_t e820_reserved = 2;
inline constexpr uint32_t e820_acpi = 3;
inline constexpr uint32_t e820_nvs = 4;
inline constexpr uint32_t e820_unusable = 5;
inline constexpr size_t e820_max_entries = 128; // E820_MAX_ENTRIES_ZEROPAGE

#pragma pack(push, 1)

// boot.rst "The Real-Mode Kernel Header": offsets in comments are from the start of the image / zero page.
struct SetupHeader {
    uint8_t setup_sects;          // 0x1f1 setup size in sectors (0 means 4)
    uint16_t root_flags;          // 0x1f2
    uint32_t syssize;             // 0x1f4 protected-mode code size in 16-byte paragraphs (2.04+)
    uint16_t ram_size;            // 0x1f8 obsolete
    uint16_t vid_mode;            // 0x1fa
    uint16_t root_dev;            // 0x1fc
    uint16_t boot_flag;           // 0x1fe 0xAA55
    uint16_t jump;                // 0x200 short jump; its second byte gives the header's end
    uint32_t header;              // 0x202 "HdrS"
    uint16_t version;             // 0x206 protocol version
    uint32_t realmode_swtch;      // 0x208
    uint16_t start_sys_seg;       // 0x20c obsolete
    uint16_t kernel_version;      // 0x20e
    uint8_t type_of_loader;       // 0x210 write
    uint8_t loadflags;            // 0x211 modify
    uint16_t setup_move_size;     // 0x212
    uint32_t code32_start;        // 0x214
    uint32_t ramdisk_image;       // 0x218 write
    uint32_t ramdisk_size;        // 0x21c write
    uint32_t bootsect_kludge;     // 0x220 obsolete
    uint16_t heap_end_ptr;        // 0x224 write (2.01+)
    uint8_t ext_loader_ver;       // 0x226
    uint8_t ext_loader_type;      // 0x227
    uint32_t cmd_line_ptr;        // 0x228 write (2.02+)
    uint32_t initrd_addr_max;     // 0x22c highest byte the initrd may occupy (2.03+)
    uint32_t kernel_alignment;    // 0x230 (2.05+)
    uint8_t relocatable_kernel;   // 0x234 (2.05+)
    uint8_t min_alignment;        // 0x235 log2 (2.10+)
    uint16_t xloadflags;          // 0x236 (2.12+)
    uint32_t cmdline_size;        // 0x238 maximum command line length without the NUL (2.06+)
    uint32_t hardware_subarch;    // 0x23c (2.07+)
    uint64_t hardware_subarch_data; // 0x240
    uint32_t payload_offset;      // 0x248 (2.08+)
    uint32_t payload_length;      // 0x24c
    uint64_t setup_data;          // 0x250 (2.09+)
    uint64_t pref_address;        // 0x258 (2.10+)
    uint32_t init_size;           // 0x260 memory needed from the runtime start address (2.10+)
    uint32_t handover_offset;     // 0x264 (2.11+)
    uint32_t kernel_info_offset;  // 0x268 (2.15+)
};

#define VMGEN_SETUP_OFFSET(field) (offsetof(SetupHeader, field) + setup_header_offset)
static_assert(sizeof(SetupHeader) == 0x26c - 0x1f1);
static_assert(VMGEN_SETUP_OFFSET(boot_flag) == 0x1fe);
static_assert(VMGEN_SETUP_OFFSET(header) == 0x202);
static_assert(VMGEN_SETUP_OFFSET(version) == 0x206);
static_assert(VMGEN_SETUP_OFFSET(type_of_loader) == 0x210);
static_assert(VMGEN_SETUP_OFFSET(code32_start) == 0x214);
static_assert(VMGEN_SETUP_OFFSET(ramdisk_image) == 0x218);
static_assert(VMGEN_SETUP_OFFSET(heap_end_ptr) == 0x224);
static_assert(VMGEN_SETUP_OFFSET(cmd_line_ptr) == 0x228);
static_assert(VMGEN_SETUP_OFFSET(initrd_addr_max) == 0x22c);
static_assert(VMGEN_SETUP_OFFSET(relocatable_kernel) == 0x234);
static_assert(VMGEN_SETUP_OFFSET(xloadflags) == 0x236);
static_assert(VMGEN_SETUP_OFFSET(cmdline_size) == 0x238);
static_assert(VMGEN_SETUP_OFFSET(payload_offset) == 0x248);
static_assert(VMGEN_SETUP_OFFSET(pref_address) == 0x258);
static_assert(VMGEN_SETUP_OFFSET(init_size) == 0x260);
static_assert(VMGEN_SETUP_OFFSET(kernel_info_offset) == 0x268);
#undef VMGEN_SETUP_OFFSET

// zero-page.rst e820_table entry (struct boot_e820_entry).
struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

// zero-page.rst: struct boot_params, 4096 bytes. Fields a loader does not fill are kept as opaque bytes.
struct BootParams {
    uint8_t screen_info[0x40];           // 0x000
    uint8_t apm_bios_info[0x14];         // 0x040
    uint8_t pad_054[0x4];                // 0x054
    uint64_t tboot_addr;                 // 0x058
    uint8_t ist_info[0x10];              // 0x060
    uint64_t acpi_rsdp_addr;             // 0x070
    uint8_t pad_078[0x8];                // 0x078
    uint8_t hd0_info[0x10];              // 0x080 obsolete
    uint8_t hd1_info[0x10];              // 0x090 obsolete
    uint8_t sys_desc_table[0x10];        // 0x0a0 obsolete
    uint8_t olpc_ofw_header[0x10];       // 0x0b0
    uint32_t ext_ramdisk_image;          // 0x0c0 ramdisk_image high 32 bits
    uint32_t ext_ramdisk_size;           // 0x0c4 ramdisk_size high 32 bits
    uint32_t ext_cmd_line_ptr;           // 0x0c8 cmd_line_ptr high 32 bits
    uint8_t pad_0cc[0x13c - 0xcc];       // 0x0cc
    uint32_t cc_blob_address;            // 0x13c
    uint8_t edid_info[0x80];             // 0x140
    uint8_t efi_info[0x20];              // 0x1c0
    uint32_t alt_mem_k;                  // 0x1e0
    uint32_t scratch;                    // 0x1e4
    uint8_t e820_entries;                // 0x1e8
    uint8_t eddbuf_entries;              // 0x1e9
    uint8_t edd_mbr_sig_buf_entries;     // 0x1ea
    uint8_t kbd_status;                  // 0x1eb
    uint8_t secure_boot;                 // 0x1ec
    uint8_t pad_1ed[0x2];                // 0x1ed
    uint8_t sentinel;                    // 0x1ef
    uint8_t pad_1f0[0x1];                // 0x1f0
    SetupHeader hdr;                     // 0x1f1
    uint8_t pad_26c[0x290 - 0x26c];      // 0x26c
    uint8_t edd_mbr_sig_buffer[0x40];    // 0x290
    E820Entry e820_table[e820_max_entries]; // 0x2d0
    uint8_t pad_cd0[0xd00 - 0xcd0];      // 0xcd0
    uint8_t eddbuf[0x1ec];               // 0xd00
    uint8_t pad_eec[0x1000 - 0xeec];     // 0xeec
};

#pragma pack(pop)

static_assert(sizeof(BootParams) == 4096);
static_assert(offsetof(BootParams, tboot_addr) == 0x058);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_ramdisk_size) == 0x0c4);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, cc_blob_address) == 0x13c);
static_assert(offsetof(BootParams, edid_info) == 0x140);
static_assert(offsetof(BootParams, efi_info) == 0x1c0);
static_assert(offsetof(BootParams, alt_mem_k) == 0x1e0);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == setup_header_offset);
static_assert(offsetof(BootParams, edd_mbr_sig_buffer) == 0x290);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(offsetof(BootParams, eddbuf) == 0xd00);

} // namespace vmgen::protocols::linux_boot
