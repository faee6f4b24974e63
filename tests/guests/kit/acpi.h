// Test-guest kit: ACPI table discovery (RSDP, XSDT/RSDT, FADT, MADT, DSDT, FACS), \_S5_ from the DSDT,
// power off through PM1a_CNT and reset through the FADT reset register.
// Reference: ACPI 6.5, chapter 5 (tables) and 7.4.2 (\_Sx), 20.2 (AML encoding).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kit {

inline constexpr unsigned acpi_max_tables = 64;
inline constexpr unsigned madt_max_lapics = 256;
inline constexpr unsigned madt_max_ioapics = 16;
inline constexpr unsigned madt_max_overrides = 16;

// MPS INTI flags of a MADT interrupt source override (ACPI 6.5, 5.2.12.5).
inline constexpr uint16_t mps_polarity_mask = 0x3; // 0 bus default, 1 active high, 3 active low
inline constexpr uint16_t mps_polarity_high = 0x1;
inline constexpr uint16_t mps_polarity_low = 0x3;
inline constexpr uint16_t mps_trigger_mask = 0xc; // 0 bus default, 4 edge, 0xc level
inline constexpr uint16_t mps_trigger_edge = 0x4;
inline constexpr uint16_t mps_trigger_level = 0xc;

// An ISA IRQ as the I/O APIC sees it: its GSI, and whether it is level-triggered / active low.
struct IsaRoute {
    uint32_t gsi = 0;
    bool level = false;
    bool active_low = false;
    bool overridden = false; // a MADT interrupt source override named this IRQ
};

struct Acpi {
    bool loaded = false;        // load_acpi() has run
    const uint8_t* rsdp = nullptr;
    bool rsdp_checksum_ok = false;          // first 20 bytes
    bool rsdp_extended_checksum_ok = false; // whole structure (revision >= 2), true when not applicable
    uint8_t rsdp_revision = 0;
    const uint8_t* root = nullptr; // XSDT, or RSDT when there is no XSDT
    bool root_is_xsdt = false;
    const uint8_t* tables[acpi_max_tables] = {}; // tables listed by the root table, in order
    unsigned table_count = 0;
    const uint8_t* fadt = nullptr;
    const uint8_t* madt = nullptr;
    const uint8_t* dsdt = nullptr;
    const uint8_t* facs = nullptr;
};

struct Madt {
    bool valid = false;
    uint32_t lapic_address = 0;
    bool pcat_compat = false;
    unsigned lapic_count = 0; // enabled processors (local APIC and local x2APIC entries)
    uint32_t lapic_ids[madt_max_lapics] = {};
    unsigned ioapic_count = 0;
    uint32_t ioapic_ids[madt_max_ioapics] = {};
    uint32_t ioapic_addresses[madt_max_ioapics] = {};
    uint32_t ioapic_gsi_bases[madt_max_ioapics] = {};
    unsigned override_count = 0; // interrupt source overrides (bus 0, ISA)
    uint8_t override_sources[madt_max_overrides] = {};
    uint32_t override_gsis[madt_max_overrides] = {};
    uint16_t override_flags[madt_max_overrides] = {};
};

struct Fadt {
    bool valid = false;
    uint16_t sci_int = 0;
    uint32_t pm1a_cnt = 0; // I/O port (PM1a_CNT_BLK, else X_PM1a_CNT_BLK when in system I/O space)
    uint32_t pm1b_cnt = 0;
    uint16_t boot_arch = 0; // IAPC_BOOT_ARCH
    uint32_t flags = 0;
    bool reset_supported = false;
    uint8_t reset_space = 0; // GAS address space id: 0 memory, 1 system I/O
    uint64_t reset_address = 0;
    uint8_t reset_value = 0;
    bool hw_reduced = false;
    uint8_t sleep_control_space = 0;
    uint64_t sleep_control_address = 0;
};

uint32_t table_signature(const uint8_t* table); // little-endian u32 of the 4 signature bytes
uint32_t table_length(const uint8_t* table);
bool checksum_ok(const void* p, size_t len);
// Copies the 4-character signature of a table into out (5 bytes, NUL terminated).
void signature_string(const uint8_t* table, char out[5]);

// RSDP address from the boot protocol (hvm_start_info.rsdp_paddr); 0: scan 0xe0000-0xfffff.
void set_rsdp_hint(uint64_t paddr);
// Finds and checks the tables (once; later calls return the cached result). Never fails: missing parts
// stay null.
const Acpi& acpi();
Madt parse_madt(const uint8_t* madt);
Fadt parse_fadt(const uint8_t* fadt);
// Where ISA IRQ `irq` arrives at the I/O APICs: the MADT's interrupt source override for it, else GSI
// `irq`, edge-triggered, active high (the ISA defaults).
IsaRoute isa_route(const Madt& madt, unsigned irq);
// SLP_TYPa from the DSDT's \_S5_ package, or -1 when not found.
int s5_slp_typ(const uint8_t* dsdt);
// True if the bytes of s (length n) occur in the table.
bool table_contains(const uint8_t* table, const char* s, size_t n);

// ACPI S5 through PM1a_CNT (SLP_TYP << 10 | SLP_EN). Prints an error and halts if the VMM ignores it.
[[noreturn]] void power_off();
// Writes the FADT reset register. Returns if nothing happened.
void reset();

} // namespace kit
