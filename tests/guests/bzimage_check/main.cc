// bzimage_check: a Linux bzImage (built by tools/mkbzimage from this ELF) entered through the 64-bit boot
// protocol (boot.rst "64-bit Boot Protocol"). Checks the processor state at the entry and the zero page
// the loader filled: setup header, E820 map, command line, initrd, ACPI RSDP. Prints the command line and
// an FNV-1a checksum of the initrd for the test to compare.
#include "kit/kit.h"

namespace lb = vmgen::protocols::linux_boot;

extern "C" char kit_image_end[]; // linker_bzimage.ld: end of the image, stacks included

namespace {

constexpr uint64_t efer_lme = 1u << 8;
constexpr uint64_t efer_lma = 1u << 10;
constexpr uint64_t cr0_pe = 1u << 0;
constexpr uint64_t cr0_pg = 1u << 31;
constexpr uint64_t cr4_pae = 1u << 5;
constexpr uint64_t rflags_if = 1u << 9;
constexpr uint64_t low_reserved_start = 0x9fc00;
constexpr uint64_t one_mib = 0x100000;
constexpr char initrd_magic[] = "VMGEN-INITRD";

// What mkbzimage puts in the header (tools/mkbzimage.cc).
constexpr uint16_t expected_version = 0x020f;
constexpr uint32_t expected_alignment = 0x200000;
constexpr uint32_t expected_cmdline_size = 2047;

const char* first_failure = nullptr;

void check(bool ok, const char* what)
{
    if (ok)
        return;
    kit::line("check failed: %s", what);
    if (!first_failure)
        first_failure = what;
}

bool overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size)
{
    return a < b + b_size && b < a + a_size;
}

// True if [addr, addr + size) lies inside one E820 entry of the given type.
bool in_e820(const lb::BootParams& bp, uint64_t addr, uint64_t size, uint32_t type)
{
    for (unsigned i = 0; i < bp.e820_entries && i < lb::e820_max_entries; ++i) {
        const lb::E820Entry& e = bp.e820_table[i];
        if (e.type == type && addr >= e.addr && addr + size <= e.addr + e.size && addr + size >= addr)
            return true;
    }
    return false;
}

void check_entry_state()
{
    const kit::LinuxEntryState& s = kit::linux_entry_state();
    kit::line("entry rip=0x%lx cs=0x%lx ds=0x%lx es=0x%lx ss=0x%lx rsp=0x%lx rflags=0x%lx", s.rip, s.cs, s.ds,
              s.es, s.ss, s.rsp, s.rflags);
    kit::line("entry efer=0x%lx cr0=0x%lx cr3=0x%lx cr4=0x%lx gdt=0x%lx/0x%x", s.efer, s.cr0, s.cr3, s.cr4,
              s.gdt_base, s.gdt_limit);
    check(s.rip == reinterpret_cast<uint64_t>(&kit_linux_entry64), "entered at the link address + 0x200");
    check((s.efer & (efer_lme | efer_lma)) == (efer_lme | efer_lma), "EFER.LME and EFER.LMA set");
    check((s.cr0 & (cr0_pe | cr0_pg)) == (cr0_pe | cr0_pg), "CR0.PE and CR0.PG set");
    check((s.cr4 & cr4_pae) != 0, "CR4.PAE set");
    check((s.rflags & rflags_if) == 0, "interrupts disabled");
    check(s.cs == lb::boot_cs, "CS is __BOOT_CS (0x10)");
    check(s.ds == lb::boot_ds && s.es == lb::boot_ds && s.ss == lb::boot_ds, "DS, ES, SS are __BOOT_DS (0x18)");
    // The CS descriptor in the loader's GDT: present code segment with L = 1, D = 0 (64-bit).
    bool cs_64 = false;
    if ((s.cs | 7) <= s.gdt_limit && s.gdt_base < (1ull << 32)) {
        uint64_t d = kit::load64(reinterpret_cast<const void*>(s.gdt_base + (s.cs & ~7ull)));
        bool present = (d >> 47) & 1;
        bool code = ((d >> 44) & 1) && ((d >> 43) & 1);
        bool l = (d >> 53) & 1;
        bool db = (d >> 54) & 1;
        kit::line("entry cs descriptor=0x%lx present=%d code=%d l=%d d=%d", d, present, code, l, db);
        cs_64 = present && code && l && !db;
    }
    check(cs_64, "CS is a 64-bit code segment");
    if (cs_64 && (s.efer & efer_lma))
        kit::line("entry mode=64-bit");
}

void check_setup_header(const lb::BootParams& bp)
{
    const lb::SetupHeader& h = bp.hdr;
    char magic[5] = {};
    __builtin_memcpy(magic, &h.header, 4);
    kit::line("setup_header boot_flag=0x%x header=%s version=0x%x type_of_loader=0x%x loadflags=0x%x "
              "code32_start=0x%x",
              h.boot_flag, magic, h.version, h.type_of_loader, h.loadflags, h.code32_start);
    uint64_t load = reinterpret_cast<uint64_t>(&kit_linux_entry64) - lb::entry64_offset;
    check(h.boot_flag == lb::boot_flag_magic, "boot_flag 0xAA55");
    check(h.header == lb::header_magic, "header HdrS");
    check(h.version == expected_version, "protocol version copied");
    check(h.type_of_loader == lb::loader_type_undefined, "type_of_loader 0xff");
    check((h.loadflags & lb::loadflag_loaded_high) != 0, "loadflags LOADED_HIGH");
    check(h.code32_start == load, "code32_start is the load address");
    check(h.setup_sects == 1, "setup_sects copied");
    check(h.relocatable_kernel == 1 && h.kernel_alignment == expected_alignment, "relocatable_kernel copied");
    check(h.pref_address == load, "pref_address copied");
    check((h.xloadflags & lb::xlf_kernel_64) != 0, "xloadflags XLF_KERNEL_64 copied");
    check(h.cmdline_size == expected_cmdline_size, "cmdline_size copied");
    uint64_t footprint = reinterpret_cast<uint64_t>(kit_image_end) - load;
    check(h.init_size >= footprint, "init_size covers the image");
    check(in_e820(bp, load, h.init_size, lb::e820_ram), "the kernel (init_size) lies in RAM");
    check(in_e820(bp, reinterpret_cast<uint64_t>(&bp), sizeof bp, lb::e820_ram), "boot_params lies in RAM");
}

void check_e820(const lb::BootParams& bp)
{
    unsigned n = bp.e820_entries;
    kit::line("e820 entries=%u", n);
    check(n > 0 && n <= lb::e820_max_entries, "e820_entries in 1..128");
    if (n > lb::e820_max_entries)
        n = lb::e820_max_entries;
    uint64_t ram = 0;
    uint64_t previous_end = 0;
    bool sorted = true;
    for (unsigned i = 0; i < n; ++i) {
        const lb::E820Entry& e = bp.e820_table[i];
        kit::line("e820 addr=0x%lx size=0x%lx type=%u", e.addr, e.size, e.type);
        if (e.type == lb::e820_ram)
            ram += e.size;
        if (e.addr < previous_end || e.size == 0)
            sorted = false;
        previous_end = e.addr + e.size;
    }
    check(sorted, "e820 entries sorted, disjoint, non-empty");
    check(in_e820(bp, 0, 0x1000, lb::e820_ram), "RAM at 0");
    check(in_e820(bp, one_mib, 0x1000, lb::e820_ram), "RAM at 1 MiB");
    // 0x9fc00 .. 1 MiB: covered by non-RAM entries (reserved, or ACPI).
    uint64_t cursor = low_reserved_start;
    for (unsigned i = 0; i < n && cursor < one_mib; ++i) {
        const lb::E820Entry& e = bp.e820_table[i];
        if (e.addr <= cursor && cursor < e.addr + e.size && e.type != lb::e820_ram)
            cursor = e.addr + e.size;
    }
    check(cursor >= one_mib && in_e820(bp, low_reserved_start, 0x400, lb::e820_reserved),
          "0x9fc00 .. 1 MiB reserved");
    kit::line("e820 ram_kib=%lu", ram / 1024);
}

uint64_t check_cmdline(const lb::BootParams& bp, uint64_t& length)
{
    uint64_t ptr = bp.hdr.cmd_line_ptr | uint64_t{bp.ext_cmd_line_ptr} << 32;
    length = 0;
    check(ptr != 0 && ptr < (1ull << 32), "cmd_line_ptr set, below 4 GiB");
    if (ptr == 0 || ptr >= (1ull << 32))
        return 0;
    const char* s = reinterpret_cast<const char*>(ptr);
    while (length <= bp.hdr.cmdline_size && s[length])
        ++length;
    check(length <= bp.hdr.cmdline_size, "command line NUL terminated within cmdline_size");
    check(in_e820(bp, ptr, length + 1, lb::e820_ram), "command line lies in RAM");
    kit::line("cmdline addr=0x%lx length=%lu", ptr, length);
    if (length <= bp.hdr.cmdline_size)
        kit::line("cmdline %s", s);
    return ptr;
}

struct Fnv {
    const uint8_t* data;
    uint64_t size;
    uint32_t hash;
};

// FNV-1a (32-bit), in ring 3: native speed where ring 0 is emulated.
void fnv1a(void* arg)
{
    auto* f = static_cast<Fnv*>(arg);
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < f->size; ++i) {
        h ^= f->data[i];
        h *= 16777619u;
    }
    f->hash = h;
}

void check_initrd(const lb::BootParams& bp, uint64_t cmdline, uint64_t cmdline_length)
{
    uint64_t addr = bp.hdr.ramdisk_image | uint64_t{bp.ext_ramdisk_image} << 32;
    uint64_t size = bp.hdr.ramdisk_size | uint64_t{bp.ext_ramdisk_size} << 32;
    kit::line("initrd addr=0x%lx size=%lu", addr, size);
    check(addr != 0 && size != 0, "ramdisk_image and ramdisk_size set");
    if (addr == 0 || size == 0 || addr + size > (1ull << 32))
        return;
    uint64_t load = bp.hdr.code32_start;
    check(in_e820(bp, addr, size, lb::e820_ram), "initrd lies in RAM");
    check(addr >= one_mib, "initrd above 1 MiB");
    check(addr + size - 1 <= bp.hdr.initrd_addr_max, "initrd below initrd_addr_max");
    check(!overlaps(addr, size, load, bp.hdr.init_size), "initrd clear of the kernel (init_size)");
    check(!overlaps(addr, size, reinterpret_cast<uint64_t>(&bp), sizeof bp), "initrd clear of boot_params");
    check(!overlaps(addr, size, cmdline, cmdline_length + 1), "initrd clear of the command line");
    const auto* data = reinterpret_cast<const uint8_t*>(addr);
    bool magic = size >= sizeof initrd_magic - 1 && __builtin_memcmp(data, initrd_magic, sizeof initrd_magic - 1) == 0;
    check(magic, "initrd starts with VMGEN-INITRD");
    Fnv f{data, size, 0};
    kit::run_in_ring3(fnv1a, &f);
    kit::line("initrd magic=%s fnv1a=0x%08x", magic ? "ok" : "bad", f.hash);
}

void check_rsdp(const lb::BootParams& bp)
{
    uint64_t addr = bp.acpi_rsdp_addr;
    check(addr != 0 && addr < (1ull << 32), "acpi_rsdp_addr set, below 4 GiB");
    if (addr == 0 || addr >= (1ull << 32))
        return;
    const auto* p = reinterpret_cast<const uint8_t*>(addr);
    bool signature = __builtin_memcmp(p, "RSD PTR ", 8) == 0;
    bool sum = kit::checksum_ok(p, 20);
    uint8_t revision = p[15];
    bool extended = true;
    if (revision >= 2) {
        uint32_t length = kit::load32(p + 20);
        extended = length >= 36 && length < 4096 && kit::checksum_ok(p, length);
    }
    kit::line("rsdp addr=0x%lx signature=%s revision=%u checksum=%s extended_checksum=%s", addr,
              signature ? "ok" : "bad", revision, sum ? "ok" : "bad", extended ? "ok" : "bad");
    check(signature && sum && extended, "acpi_rsdp_addr points at a valid RSDP");
}

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    if (kit::boot_protocol() != kit::BootProtocol::linux64 || !kit::linux_boot_params())
        kit::finish(false, "not entered through the Linux 64-bit boot protocol");
    const lb::BootParams& bp = *kit::linux_boot_params();
    kit::line("boot_params at 0x%lx", reinterpret_cast<uint64_t>(&bp));
    check_entry_state();
    check_setup_header(bp);
    check_e820(bp);
    uint64_t cmdline_length = 0;
    uint64_t cmdline = check_cmdline(bp, cmdline_length);
    check_initrd(bp, cmdline, cmdline_length);
    check_rsdp(bp);
    kit::finish(first_failure == nullptr, first_failure);
}
