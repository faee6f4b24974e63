#include "kit/acpi.h"

#include "kit/cpu.h"
#include "kit/serial.h"

namespace kit {

namespace {

Acpi g_acpi;

constexpr uint32_t sig(const char (&s)[5])
{
    return static_cast<uint32_t>(static_cast<uint8_t>(s[0])) | static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(s[3])) << 24;
}

const uint8_t* phys(uint64_t addr)
{
    if (addr == 0 || addr >= (1ull << 32))
        return nullptr; // only the low 4 GiB are mapped
    return reinterpret_cast<const uint8_t*>(addr);
}

bool rsdp_at(const uint8_t* p)
{
    static constexpr char rsd_ptr[8] = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
    return __builtin_memcmp(p, rsd_ptr, 8) == 0 && checksum_ok(p, 20);
}

const uint8_t* find_rsdp(uint64_t hint)
{
    if (const uint8_t* p = phys(hint))
        return p;
    for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
        if (rsdp_at(phys(a)))
            return phys(a);
    return nullptr;
}

// SystemIO generic address structure -> port, or 0.
uint32_t gas_io_port(const uint8_t* gas)
{
    if (load8(gas) != 1)
        return 0;
    uint64_t addr = load64(gas + 4);
    return addr <= 0xffff ? static_cast<uint32_t>(addr) : 0;
}

} // namespace

namespace {
uint64_t g_rsdp_hint = 0;
} // namespace

void set_rsdp_hint(uint64_t paddr) { g_rsdp_hint = paddr; }

uint32_t table_signature(const uint8_t* table) { return load32(table); }
uint32_t table_length(const uint8_t* table) { return load32(table + 4); }

bool checksum_ok(const void* p, size_t len)
{
    const uint8_t* b = static_cast<const uint8_t*>(p);
    uint8_t sum = 0;
    for (size_t i = 0; i < len; ++i)
        sum = static_cast<uint8_t>(sum + b[i]);
    return sum == 0;
}

void signature_string(const uint8_t* table, char out[5])
{
    for (int i = 0; i < 4; ++i) {
        char c = static_cast<char>(table[i]);
        out[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    out[4] = '\0';
}

const Acpi& acpi()
{
    Acpi& a = g_acpi;
    if (a.loaded)
        return a;
    a.loaded = true;
    a.rsdp = find_rsdp(g_rsdp_hint);
    if (!a.rsdp)
        return a;
    a.rsdp_checksum_ok = checksum_ok(a.rsdp, 20);
    a.rsdp_revision = a.rsdp[15];
    a.rsdp_extended_checksum_ok = true;
    uint64_t xsdt = 0;
    if (a.rsdp_revision >= 2) {
        uint32_t len = load32(a.rsdp + 20);
        a.rsdp_extended_checksum_ok = len >= 36 && len < 4096 && checksum_ok(a.rsdp, len);
        xsdt = load64(a.rsdp + 24);
    }
    uint32_t rsdt = load32(a.rsdp + 16);
    a.root = phys(xsdt);
    a.root_is_xsdt = a.root != nullptr;
    if (!a.root)
        a.root = phys(rsdt);
    if (!a.root)
        return a;

    unsigned entry_size = a.root_is_xsdt ? 8 : 4;
    uint32_t root_len = table_length(a.root);
    unsigned entries = root_len > 36 ? (root_len - 36) / entry_size : 0;
    for (unsigned i = 0; i < entries && a.table_count < acpi_max_tables; ++i) {
        const uint8_t* e = a.root + 36 + i * entry_size;
        const uint8_t* t = phys(a.root_is_xsdt ? load64(e) : load32(e));
        if (!t)
            continue;
        a.tables[a.table_count++] = t;
        uint32_t s = table_signature(t);
        if (s == sig("FACP") && !a.fadt)
            a.fadt = t;
        else if (s == sig("APIC") && !a.madt)
            a.madt = t;
    }
    if (a.fadt) {
        uint32_t len = table_length(a.fadt);
        uint64_t dsdt = len >= 148 ? load64(a.fadt + 140) : 0;
        if (!dsdt)
            dsdt = load32(a.fadt + 40);
        a.dsdt = phys(dsdt);
        uint64_t facs = len >= 140 ? load64(a.fadt + 132) : 0;
        if (!facs)
            facs = load32(a.fadt + 36);
        a.facs = phys(facs);
    }
    return a;
}

Madt parse_madt(const uint8_t* madt)
{
    Madt m;
    if (!madt)
        return m;
    uint32_t len = table_length(madt);
    if (len < 44)
        return m;
    m.valid = true;
    m.lapic_address = load32(madt + 36);
    m.pcat_compat = (load32(madt + 40) & 1) != 0;
    for (uint32_t off = 44; off + 2 <= len;) {
        uint8_t type = madt[off];
        uint8_t elen = madt[off + 1];
        if (elen < 2 || off + elen > len)
            break;
        const uint8_t* e = madt + off;
        if (type == 0 && elen >= 8) { // processor local APIC
            if ((load32(e + 4) & 1) && m.lapic_count < madt_max_lapics)
                m.lapic_ids[m.lapic_count++] = e[3];
        } else if (type == 9 && elen >= 16) { // processor local x2APIC
            if ((load32(e + 8) & 1) && m.lapic_count < madt_max_lapics)
                m.lapic_ids[m.lapic_count++] = load32(e + 4);
        } else if (type == 1 && elen >= 12) { // I/O APIC
            if (m.ioapic_count < madt_max_ioapics) {
                m.ioapic_ids[m.ioapic_count] = e[2];
                m.ioapic_addresses[m.ioapic_count] = load32(e + 4);
                m.ioapic_gsi_bases[m.ioapic_count] = load32(e + 8);
                ++m.ioapic_count;
            }
        } else if (type == 2 && elen >= 10) { // interrupt source override
            if (e[2] == 0 && m.override_count < madt_max_overrides) {
                m.override_sources[m.override_count] = e[3];
                m.override_gsis[m.override_count] = load32(e + 4);
                m.override_flags[m.override_count] = load16(e + 8);
                ++m.override_count;
            }
        }
        off += elen;
    }
    return m;
}

Fadt parse_fadt(const uint8_t* fadt)
{
    Fadt f;
    if (!fadt)
        return f;
    uint32_t len = table_length(fadt);
    if (len < 116)
        return f;
    f.valid = true;
    f.sci_int = load16(fadt + 46);
    f.pm1a_cnt = load32(fadt + 64);
    f.pm1b_cnt = load32(fadt + 68);
    if (!f.pm1a_cnt && len >= 184)
        f.pm1a_cnt = gas_io_port(fadt + 172);
    if (!f.pm1b_cnt && len >= 196)
        f.pm1b_cnt = gas_io_port(fadt + 184);
    f.boot_arch = load16(fadt + 109);
    f.flags = load32(fadt + 112);
    f.hw_reduced = (f.flags & (1u << 20)) != 0;
    if (len >= 129) {
        f.reset_supported = (f.flags & (1u << 10)) != 0;
        f.reset_space = fadt[116];
        f.reset_address = load64(fadt + 120);
        f.reset_value = fadt[128];
    }
    if (len >= 256) {
        f.sleep_control_space = fadt[244];
        f.sleep_control_address = load64(fadt + 248);
    }
    return f;
}

IsaRoute isa_route(const Madt& madt, unsigned irq)
{
    IsaRoute r;
    r.gsi = irq;
    for (unsigned i = 0; i < madt.override_count; ++i) {
        if (madt.override_sources[i] != irq)
            continue;
        uint16_t flags = madt.override_flags[i];
        r.gsi = madt.override_gsis[i];
        r.level = (flags & mps_trigger_mask) == mps_trigger_level;
        r.active_low = (flags & mps_polarity_mask) == mps_polarity_low;
        r.overridden = true;
        break;
    }
    return r;
}

int s5_slp_typ(const uint8_t* dsdt)
{
    if (!dsdt)
        return -1;
    uint32_t len = table_length(dsdt);
    for (uint32_t i = 36; i + 4 < len; ++i) {
        if (dsdt[i] != '_' || dsdt[i + 1] != 'S' || dsdt[i + 2] != '5' || dsdt[i + 3] != '_')
            continue;
        // NameOp, optionally followed by the root prefix '\', then the name.
        bool named = (i >= 1 && dsdt[i - 1] == 0x08) || (i >= 2 && dsdt[i - 1] == '\\' && dsdt[i - 2] == 0x08);
        if (!named)
            continue;
        uint32_t p = i + 4;
        if (p >= len || dsdt[p] != 0x12) // PackageOp
            continue;
        ++p;
        if (p >= len)
            break;
        p += 1 + (dsdt[p] >> 6); // PkgLength: lead byte bits 7-6 = number of following bytes
        ++p;                     // NumElements
        if (p >= len)
            break;
        uint8_t op = dsdt[p];
        if (op == 0x0a && p + 1 < len) // BytePrefix
            return dsdt[p + 1];
        if (op == 0x0b && p + 2 < len) // WordPrefix
            return load16(dsdt + p + 1);
        if (op == 0x00 || op == 0x01) // ZeroOp, OneOp
            return op;
        return -1;
    }
    return -1;
}

bool table_contains(const uint8_t* table, const char* s, size_t n)
{
    if (!table || n == 0)
        return false;
    uint32_t len = table_length(table);
    for (uint32_t i = 0; i + n <= len; ++i)
        if (table[i] == static_cast<uint8_t>(s[0]) && __builtin_memcmp(table + i, s, n) == 0)
            return true;
    return false;
}

void power_off()
{
    const Acpi& a = acpi();
    Fadt f = parse_fadt(a.fadt);
    int slp = s5_slp_typ(a.dsdt);
    if (f.valid && slp >= 0) {
        uint16_t slp_typ = static_cast<uint16_t>(slp & 7);
        if (f.hw_reduced && f.sleep_control_space == 1 && f.sleep_control_address) {
            outb(static_cast<uint16_t>(f.sleep_control_address), static_cast<uint8_t>(slp_typ << 2 | 1u << 5));
        } else if (f.pm1a_cnt) {
            uint16_t v = static_cast<uint16_t>(slp_typ << 10 | 1u << 13);
            outw(static_cast<uint16_t>(f.pm1a_cnt), v);
            if (f.pm1b_cnt)
                outw(static_cast<uint16_t>(f.pm1b_cnt), v);
        }
        delay_us(100000);
    }
    line("error: ACPI power off failed (fadt=%s pm1a_cnt=0x%x slp_typ=%d)", f.valid ? "yes" : "no", f.pm1a_cnt,
         slp);
    halt_forever();
}

void reset()
{
    Fadt f = parse_fadt(acpi().fadt);
    if (!f.valid || !f.reset_address) {
        // ACPI 1.0 FADTs have no reset register: use the PCI reset control register instead.
        line("error: no FADT reset register, trying port 0xcf9");
        outb(0xcf9, 0x06);
        delay_us(100000);
        return;
    }
    if (f.reset_space == 1)
        outb(static_cast<uint16_t>(f.reset_address), f.reset_value);
    else if (f.reset_space == 0 && f.reset_address < (1ull << 32))
        *reinterpret_cast<volatile uint8_t*>(f.reset_address) = f.reset_value;
    else
        line("error: reset register in address space %u", f.reset_space);
    delay_us(100000);
}

} // namespace kit
