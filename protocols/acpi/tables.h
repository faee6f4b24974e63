// ACPI system description tables: the fixed-layout structures an OS reads from guest memory.
// Reference: ACPI Specification 6.5, chapter 5.2 ("ACPI System Description Tables"). Section numbers are
// given per structure. All fields are little-endian and packed exactly as in the specification tables;
// multi-byte fields are frequently unaligned, so copy structures in and out with memcpy.
// Usable by freestanding code: only <cstddef>/<cstdint>.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::acpi {

// Root System Description Pointer, revision 2 (§5.2.5.3). `checksum` covers the first 20 bytes (the ACPI 1.0
// structure), `extended_checksum` the whole structure. On legacy BIOS systems the OS finds it by scanning the
// first KiB of the EBDA and 0xE0000-0xFFFFF on 16-byte boundaries for `rsdp_signature`.
struct [[gnu::packed]] Rsdp {
    char signature[8]; // "RSD PTR "
    uint8_t checksum; // bytes 0..19 sum to zero
    char oem_id[6];
    uint8_t revision; // 2 for ACPI 2.0 and later
    uint32_t rsdt_address;
    uint32_t length; // 36
    uint64_t xsdt_address;
    uint8_t extended_checksum; // all 36 bytes sum to zero
    uint8_t reserved[3];
};
static_assert(sizeof(Rsdp) == 36);
static_assert(offsetof(Rsdp, checksum) == 8);
static_assert(offsetof(Rsdp, revision) == 15);
static_assert(offsetof(Rsdp, rsdt_address) == 16);
static_assert(offsetof(Rsdp, xsdt_address) == 24);
static_assert(offsetof(Rsdp, extended_checksum) == 32);

inline constexpr uint32_t rsdp_v1_length = 20; // the part `Rsdp::checksum` covers
inline constexpr uint8_t rsdp_revision = 2;

// System Description Table Header (§5.2.6), at the start of every table except the RSDP and the FACS.
// `checksum` makes all `length` bytes of the table sum to zero.
struct [[gnu::packed]] TableHeader {
    char signature[4];
    uint32_t length; // of the whole table, header included
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};
static_assert(sizeof(TableHeader) == 36);
static_assert(offsetof(TableHeader, length) == 4);
static_assert(offsetof(TableHeader, checksum) == 9);
static_assert(offsetof(TableHeader, oem_id) == 10);
static_assert(offsetof(TableHeader, oem_table_id) == 16);
static_assert(offsetof(TableHeader, creator_id) == 28);

// Generic Address Structure (§5.2.3.2).
struct [[gnu::packed]] GenericAddress {
    uint8_t address_space_id; // gas_space_*
    uint8_t register_bit_width;
    uint8_t register_bit_offset;
    uint8_t access_size; // gas_access_*
    uint64_t address;
};
static_assert(sizeof(GenericAddress) == 12);
static_assert(offsetof(GenericAddress, access_size) == 3);
static_assert(offsetof(GenericAddress, address) == 4);

inline constexpr uint8_t gas_space_system_memory = 0;
inline constexpr uint8_t gas_space_system_io = 1;
inline constexpr uint8_t gas_access_undefined = 0;
inline constexpr uint8_t gas_access_byte = 1;
inline constexpr uint8_t gas_access_word = 2;
inline constexpr uint8_t gas_access_dword = 3;
inline constexpr uint8_t gas_access_qword = 4;

// Extended System Description Table (§5.2.8): the header followed by 64-bit table addresses. The Root System
// Description Table (§5.2.7) has the same shape with 32-bit addresses. Entries start at offset 36, so XSDT
// entries are not naturally aligned.
inline constexpr size_t sdt_entries_offset = sizeof(TableHeader);

// Fixed ACPI Description Table, revision 6 (§5.2.9, Table 5.9). Signature "FACP".
struct [[gnu::packed]] Fadt {
    TableHeader header;
    uint32_t firmware_ctrl; // 32-bit FACS address
    uint32_t dsdt; // 32-bit DSDT address
    uint8_t reserved0; // INT_MODEL in ACPI 1.0
    uint8_t preferred_pm_profile;
    uint16_t sci_int; // SCI as an 8259 IRQ number (or GSI where no 8259 exists)
    uint32_t smi_cmd; // 0: the platform is always in ACPI mode
    uint8_t acpi_enable;
    uint8_t acpi_disable;
    uint8_t s4bios_req;
    uint8_t pstate_cnt;
    uint32_t pm1a_evt_blk;
    uint32_t pm1b_evt_blk;
    uint32_t pm1a_cnt_blk;
    uint32_t pm1b_cnt_blk;
    uint32_t pm2_cnt_blk;
    uint32_t pm_tmr_blk;
    uint32_t gpe0_blk;
    uint32_t gpe1_blk;
    uint8_t pm1_evt_len;
    uint8_t pm1_cnt_len;
    uint8_t pm2_cnt_len;
    uint8_t pm_tmr_len;
    uint8_t gpe0_blk_len;
    uint8_t gpe1_blk_len;
    uint8_t gpe1_base;
    uint8_t cst_cnt;
    uint16_t p_lvl2_lat; // > 100: C2 not supported
    uint16_t p_lvl3_lat; // > 1000: C3 not supported
    uint16_t flush_size;
    uint16_t flush_stride;
    uint8_t duty_offset;
    uint8_t duty_width;
    uint8_t day_alrm;
    uint8_t mon_alrm;
    uint8_t century; // CMOS index of the century byte, 0 if none
    uint16_t iapc_boot_arch; // iapc_boot_arch_* bits
    uint8_t reserved1;
    uint32_t flags; // fadt_flag_* bits
    GenericAddress reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t fadt_minor_version; // bits 3:0 minor version, bits 7:4 errata
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    GenericAddress x_pm1a_evt_blk;
    GenericAddress x_pm1b_evt_blk;
    GenericAddress x_pm1a_cnt_blk;
    GenericAddress x_pm1b_cnt_blk;
    GenericAddress x_pm2_cnt_blk;
    GenericAddress x_pm_tmr_blk;
    GenericAddress x_gpe0_blk;
    GenericAddress x_gpe1_blk;
    GenericAddress sleep_control_reg;
    GenericAddress sleep_status_reg;
    uint64_t hypervisor_vendor_identity;
};
static_assert(sizeof(Fadt) == 276);
static_assert(offsetof(Fadt, firmware_ctrl) == 36);
static_assert(offsetof(Fadt, dsdt) == 40);
static_assert(offsetof(Fadt, sci_int) == 46);
static_assert(offsetof(Fadt, smi_cmd) == 48);
static_assert(offsetof(Fadt, pm1a_evt_blk) == 56);
static_assert(offsetof(Fadt, pm1a_cnt_blk) == 64);
static_assert(offsetof(Fadt, pm_tmr_blk) == 76);
static_assert(offsetof(Fadt, pm1_evt_len) == 88);
static_assert(offsetof(Fadt, pm_tmr_len) == 91);
static_assert(offsetof(Fadt, p_lvl2_lat) == 96);
static_assert(offsetof(Fadt, century) == 108);
static_assert(offsetof(Fadt, iapc_boot_arch) == 109);
static_assert(offsetof(Fadt, flags) == 112);
static_assert(offsetof(Fadt, reset_reg) == 116);
static_assert(offsetof(Fadt, reset_value) == 128);
static_assert(offsetof(Fadt, arm_boot_arch) == 129);
static_assert(offsetof(Fadt, fadt_minor_version) == 131);
static_assert(offsetof(Fadt, x_firmware_ctrl) == 132);
static_assert(offsetof(Fadt, x_dsdt) == 140);
static_assert(offsetof(Fadt, x_pm1a_evt_blk) == 148);
static_assert(offsetof(Fadt, x_pm1a_cnt_blk) == 172);
static_assert(offsetof(Fadt, x_pm_tmr_blk) == 208);
static_assert(offsetof(Fadt, x_gpe0_blk) == 220);
static_assert(offsetof(Fadt, sleep_control_reg) == 244);
static_assert(offsetof(Fadt, sleep_status_reg) == 256);
static_assert(offsetof(Fadt, hypervisor_vendor_identity) == 268);

inline constexpr uint8_t fadt_revision = 6;

// FADT Flags (§5.2.9, Table 5.10).
inline constexpr uint32_t fadt_flag_wbinvd = 1u << 0;
inline constexpr uint32_t fadt_flag_wbinvd_flush = 1u << 1;
inline constexpr uint32_t fadt_flag_proc_c1 = 1u << 2;
inline constexpr uint32_t fadt_flag_p_lvl2_up = 1u << 3;
inline constexpr uint32_t fadt_flag_pwr_button = 1u << 4; // set: power button is a control method device
inline constexpr uint32_t fadt_flag_slp_button = 1u << 5; // set: sleep button is a control method device or absent
inline constexpr uint32_t fadt_flag_fix_rtc = 1u << 6; // set: RTC wake status not in fixed register space
inline constexpr uint32_t fadt_flag_rtc_s4 = 1u << 7;
inline constexpr uint32_t fadt_flag_tmr_val_ext = 1u << 8; // set: PM timer is 32 bits wide
inline constexpr uint32_t fadt_flag_dck_cap = 1u << 9;
inline constexpr uint32_t fadt_flag_reset_reg_sup = 1u << 10;
inline constexpr uint32_t fadt_flag_sealed_case = 1u << 11;
inline constexpr uint32_t fadt_flag_headless = 1u << 12;
inline constexpr uint32_t fadt_flag_cpu_sw_slp = 1u << 13;
inline constexpr uint32_t fadt_flag_pci_exp_wak = 1u << 14;
inline constexpr uint32_t fadt_flag_use_platform_clock = 1u << 15;
inline constexpr uint32_t fadt_flag_s4_rtc_sts_valid = 1u << 16;
inline constexpr uint32_t fadt_flag_remote_power_on_capable = 1u << 17;
inline constexpr uint32_t fadt_flag_force_apic_cluster_model = 1u << 18;
inline constexpr uint32_t fadt_flag_force_apic_physical_destination_mode = 1u << 19;
inline constexpr uint32_t fadt_flag_hw_reduced_acpi = 1u << 20;
inline constexpr uint32_t fadt_flag_low_power_s0_idle_capable = 1u << 21;

// IA-PC Boot Architecture Flags (§5.2.9.3, Table 5.11).
inline constexpr uint16_t iapc_boot_arch_legacy_devices = 1u << 0;
inline constexpr uint16_t iapc_boot_arch_8042 = 1u << 1;
inline constexpr uint16_t iapc_boot_arch_vga_not_present = 1u << 2;
inline constexpr uint16_t iapc_boot_arch_msi_not_supported = 1u << 3;
inline constexpr uint16_t iapc_boot_arch_pcie_aspm_controls = 1u << 4;
inline constexpr uint16_t iapc_boot_arch_cmos_rtc_not_present = 1u << 5;

// Firmware ACPI Control Structure (§5.2.10). No checksum; must be 64-byte aligned.
struct [[gnu::packed]] Facs {
    char signature[4]; // "FACS"
    uint32_t length; // 64
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version; // 2
    uint8_t reserved0[3];
    uint32_t ospm_flags;
    uint8_t reserved1[24];
};
static_assert(sizeof(Facs) == 64);
static_assert(offsetof(Facs, global_lock) == 16);
static_assert(offsetof(Facs, x_firmware_waking_vector) == 24);
static_assert(offsetof(Facs, version) == 32);
static_assert(offsetof(Facs, ospm_flags) == 36);

inline constexpr size_t facs_alignment = 64;
inline constexpr uint8_t facs_version = 2;

// Multiple APIC Description Table (§5.2.12), signature "APIC": this header followed by interrupt controller
// structures, each starting with a type and a length byte.
struct [[gnu::packed]] MadtHeader {
    TableHeader header;
    uint32_t local_apic_address;
    uint32_t flags; // madt_flag_*
};
static_assert(sizeof(MadtHeader) == 44);
static_assert(offsetof(MadtHeader, local_apic_address) == 36);
static_assert(offsetof(MadtHeader, flags) == 40);

inline constexpr uint32_t madt_flag_pcat_compat = 1u << 0; // a dual 8259 is present as well
inline constexpr uint8_t madt_revision = 5;

// Interrupt controller structure types (§5.2.12, Table 5.21).
inline constexpr uint8_t madt_type_local_apic = 0;
inline constexpr uint8_t madt_type_io_apic = 1;
inline constexpr uint8_t madt_type_interrupt_source_override = 2;
inline constexpr uint8_t madt_type_local_apic_nmi = 4;

// Processor Local APIC Structure (§5.2.12.2).
struct [[gnu::packed]] MadtLocalApic {
    uint8_t type; // madt_type_local_apic
    uint8_t length; // 8
    uint8_t processor_uid; // matches _UID of the processor object in the namespace
    uint8_t apic_id;
    uint32_t flags; // madt_local_apic_*
};
static_assert(sizeof(MadtLocalApic) == 8);
static_assert(offsetof(MadtLocalApic, apic_id) == 3);
static_assert(offsetof(MadtLocalApic, flags) == 4);

inline constexpr uint32_t madt_local_apic_enabled = 1u << 0;
inline constexpr uint32_t madt_local_apic_online_capable = 1u << 1;

// I/O APIC Structure (§5.2.12.3).
struct [[gnu::packed]] MadtIoApic {
    uint8_t type; // madt_type_io_apic
    uint8_t length; // 12
    uint8_t io_apic_id;
    uint8_t reserved;
    uint32_t address;
    uint32_t gsi_base;
};
static_assert(sizeof(MadtIoApic) == 12);
static_assert(offsetof(MadtIoApic, address) == 4);
static_assert(offsetof(MadtIoApic, gsi_base) == 8);

// Interrupt Source Override Structure (§5.2.12.5).
struct [[gnu::packed]] MadtInterruptSourceOverride {
    uint8_t type; // madt_type_interrupt_source_override
    uint8_t length; // 10
    uint8_t bus; // 0: ISA
    uint8_t source; // ISA IRQ
    uint32_t gsi;
    uint16_t flags; // mps_inti_*
};
static_assert(sizeof(MadtInterruptSourceOverride) == 10);
static_assert(offsetof(MadtInterruptSourceOverride, gsi) == 4);
static_assert(offsetof(MadtInterruptSourceOverride, flags) == 8);

// Local APIC NMI Structure (§5.2.12.7).
struct [[gnu::packed]] MadtLocalApicNmi {
    uint8_t type; // madt_type_local_apic_nmi
    uint8_t length; // 6
    uint8_t processor_uid; // madt_all_processors for all
    uint16_t flags; // mps_inti_*
    uint8_t lint; // LINTn input (0 or 1)
};
static_assert(sizeof(MadtLocalApicNmi) == 6);
static_assert(offsetof(MadtLocalApicNmi, flags) == 3);
static_assert(offsetof(MadtLocalApicNmi, lint) == 5);

inline constexpr uint8_t madt_all_processors = 0xff;

// MPS INTI flags (§5.2.12.5, Table 5.26): polarity in bits 1:0, trigger mode in bits 3:2.
inline constexpr uint16_t mps_inti_polarity_conforms = 0b00;
inline constexpr uint16_t mps_inti_polarity_active_high = 0b01;
inline constexpr uint16_t mps_inti_polarity_active_low = 0b11;
inline constexpr uint16_t mps_inti_trigger_conforms = 0b00 << 2;
inline constexpr uint16_t mps_inti_trigger_edge = 0b01 << 2;
inline constexpr uint16_t mps_inti_trigger_level = 0b11 << 2;

} // namespace vmgen::protocols::acpi
