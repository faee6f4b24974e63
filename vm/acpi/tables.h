// ACPI tables for the two machine generations: RSDP, RSDT, XSDT, FADT, FACS, DSDT and MADT laid out in one
// blob that the VMM copies to guest physical memory (the BIOS area at 0xE0000 on both generations).
//
// Generation 1 (legacy PC): 8259 pair, 8254 PIT, CMOS RTC, COM ports, port 0x80/0x92, PM block; the FADT
// claims legacy devices and an 8042, the MADT is PCAT_COMPAT.
// Generation 2 (UEFI + VMBus): CMOS RTC, optional COM ports, PM block and the VMBus (\_SB.VMOD.VMBS);
// no 8259, PIT, 8042, VGA or PCI: the FADT says VGA not present and MSI not supported (there is no PCI).
#pragma once

#include "support/result.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vmgen::vm::acpi {

struct AcpiConfig {
    int generation = 1; // 1 or 2
    std::vector<uint8_t> lapic_ids; // one per vCPU, in order; processor UIDs are the indices
    struct IoApic {
        uint8_t id = 0;
        uint32_t address = 0xfec00000;
        uint32_t gsi_base = 0;
    };
    IoApic ioapic;
    // PM block in port space: PM1a_EVT at +0 (4 bytes), PM1a_CNT at +4 (2), PM_TMR at +8 (4, 32-bit),
    // RESET_REG at +0xC (1 byte, written with reset_value). 16 ports are reserved for it.
    uint16_t pm_base = 0;
    uint8_t reset_value = 1;
    uint8_t s5_sleep_type = 5; // SLP_TYP for \_S5
    uint8_t sci_irq = 9; // ISA IRQ, level-triggered active-high
    struct SerialPort {
        uint16_t io_base = 0;
        uint8_t irq = 0;
    };
    std::vector<SerialPort> serial_ports; // at most 4, named COM1.. with _UID 1..
    bool rtc = true; // CMOS RTC at 0x70-0x71, IRQ 8
    // Generation 1 only (generation 2 configurations must leave them false).
    bool pic = false; // 8259 pair at 0x20/0xA0 and ELCR at 0x4D0
    bool pit = false; // 8254 at 0x40, IRQ 0 (MADT override IRQ 0 -> GSI 2)
    bool post_port = false; // port 0x80 (with 0x92) reserved as motherboard resources
    bool i8042 = false; // an 8042 keyboard controller at 0x60/0x64 (FADT IAPC_BOOT_ARCH 8042 flag)
    // Generation 2 only (generation 1 configurations must leave it empty).
    struct Vmbus {
        uint8_t irq = 5;
        uint64_t low_mmio_base = 0;
        uint64_t low_mmio_size = 0; // must be non-zero
        uint64_t high_mmio_base = 0;
        uint64_t high_mmio_size = 0; // 0: no high window
    };
    std::optional<Vmbus> vmbus;
};

struct AcpiTables {
    std::vector<uint8_t> blob; // copy to base_gpa
    uint64_t rsdp_gpa = 0;
    std::map<std::string, uint64_t> table_gpa; // by signature: RSDT XSDT FACP FACS DSDT APIC
};

// The PM block's register offsets from pm_base and the number of ports reserved for it.
inline constexpr uint16_t pm1a_evt_offset = 0x0;
inline constexpr uint16_t pm1a_cnt_offset = 0x4;
inline constexpr uint16_t pm_tmr_offset = 0x8;
inline constexpr uint16_t reset_reg_offset = 0xc;
inline constexpr uint16_t pm_block_size = 0x10;

// Builds the tables for guest physical address `base_gpa` (16-byte aligned, below 4 GiB together with
// `max_size`). Fails on an invalid configuration or when the tables need more than `max_size` bytes.
Result<AcpiTables> build_acpi_tables(const AcpiConfig& config, uint64_t base_gpa, uint64_t max_size);

// The DSDT's AML body (the term list after the table header) for `config`, which must be valid.
Result<std::vector<uint8_t>> build_dsdt_body(const AcpiConfig& config);

// Checks the configuration (also done by build_acpi_tables).
Result<void> validate_acpi_config(const AcpiConfig& config);

} // namespace vmgen::vm::acpi
