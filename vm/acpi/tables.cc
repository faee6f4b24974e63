#include "vm/acpi/tables.h"

#include "protocols/acpi/tables.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <span>
#include <string_view>

namespace vmgen::vm::acpi {

namespace {
constexpr uint8_t cmos_century_index = 0x32; // the MC146818 CMOS century byte (vm/devices/cmos_rtc)
} // namespace
namespace pa = protocols::acpi;

namespace {

constexpr std::string_view oem_id = "VMGEN ";
constexpr std::string_view creator_id = "VMGN";
constexpr uint32_t oem_revision = 1;
constexpr uint32_t creator_revision = 1;
constexpr uint8_t rsdt_revision = 1;
constexpr uint8_t xsdt_revision = 1;
constexpr uint8_t dsdt_revision = 2; // 64-bit integers
constexpr uint8_t fadt_minor_version = 3;
constexpr uint32_t local_apic_address = 0xfee00000;
constexpr uint64_t table_alignment = 16;
constexpr uint64_t four_gib = uint64_t { 1 } << 32;
constexpr size_t max_serial_ports = 4;
constexpr uint16_t p_lvl2_not_supported = 101;
constexpr uint16_t p_lvl3_not_supported = 1001;
constexpr uint8_t pit_irq = 0;
constexpr uint32_t pit_gsi = 2;
constexpr uint8_t lint1 = 1;

template <size_t N> void put_chars(char (&field)[N], std::string_view text)
{
    std::memset(field, ' ', N);
    std::memcpy(field, text.data(), std::min(N, text.size()));
}

uint8_t checksum_of(std::span<const uint8_t> bytes)
{
    uint8_t sum = 0;
    for (const uint8_t b : bytes)
        sum = static_cast<uint8_t>(sum + b);
    return static_cast<uint8_t>(0x100 - sum);
}

pa::TableHeader make_header(std::string_view signature, size_t length, uint8_t revision)
{
    pa::TableHeader header {};
    put_chars(header.signature, signature);
    header.length = static_cast<uint32_t>(length);
    header.revision = revision;
    put_chars(header.oem_id, oem_id);
    put_chars(header.oem_table_id, fmt::format("VMGN{}", signature));
    header.oem_revision = oem_revision;
    put_chars(header.creator_id, creator_id);
    header.creator_revision = creator_revision;
    return header;
}

pa::GenericAddress system_io(uint16_t port, uint8_t bit_width, uint8_t access_size)
{
    return pa::GenericAddress { .address_space_id = pa::gas_space_system_io,
        .register_bit_width = bit_width,
        .register_bit_offset = 0,
        .access_size = access_size,
        .address = port };
}

template <typename T> void append_struct(std::vector<uint8_t>& out, const T& value)
{
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &value, sizeof(T));
}

// Places tables one after another in the blob, each aligned, within max_size.
class Layout {
public:
    explicit Layout(uint64_t max_size)
        : m_max_size(max_size)
    {
    }

    Result<uint64_t> place(std::string_view what, uint64_t size, uint64_t alignment)
    {
        const uint64_t offset = (m_end + alignment - 1) / alignment * alignment;
        if (offset > m_max_size || size > m_max_size - offset)
            return fail(
                "ACPI tables do not fit in {} bytes ({} needs {} bytes at offset {})", m_max_size, what, size, offset);
        m_end = offset + size;
        return offset;
    }
    [[nodiscard]] uint64_t end() const { return m_end; }

private:
    uint64_t m_max_size;
    uint64_t m_end = 0;
};

void write_at(std::vector<uint8_t>& blob, uint64_t offset, std::span<const uint8_t> bytes)
{
    std::copy(bytes.begin(), bytes.end(), blob.begin() + static_cast<std::ptrdiff_t>(offset));
}

// Sets the header checksum of the table at `offset` so that its bytes sum to zero.
void seal_table(std::vector<uint8_t>& blob, uint64_t offset, uint64_t length)
{
    const auto at = static_cast<size_t>(offset);
    blob[at + offsetof(pa::TableHeader, checksum)] = 0;
    blob[at + offsetof(pa::TableHeader, checksum)]
        = checksum_of(std::span<const uint8_t>(blob).subspan(at, static_cast<size_t>(length)));
}

std::vector<uint8_t> build_madt(const AcpiConfig& config)
{
    std::vector<uint8_t> out(sizeof(pa::MadtHeader));
    for (size_t i = 0; i < config.lapic_ids.size(); ++i) {
        append_struct(out,
            pa::MadtLocalApic { .type = pa::madt_type_local_apic,
                .length = sizeof(pa::MadtLocalApic),
                .processor_uid = static_cast<uint8_t>(i),
                .apic_id = config.lapic_ids[i],
                .flags = pa::madt_local_apic_enabled });
    }
    append_struct(out,
        pa::MadtIoApic { .type = pa::madt_type_io_apic,
            .length = sizeof(pa::MadtIoApic),
            .io_apic_id = config.ioapic.id,
            .reserved = 0,
            .address = config.ioapic.address,
            .gsi_base = config.ioapic.gsi_base });
    if (config.generation == 1 && config.pit) {
        // The PIT's IRQ 0 is wired to I/O APIC input 2, as on PC chipsets; edge, active-high as ISA.
        append_struct(out,
            pa::MadtInterruptSourceOverride { .type = pa::madt_type_interrupt_source_override,
                .length = sizeof(pa::MadtInterruptSourceOverride),
                .bus = 0,
                .source = pit_irq,
                .gsi = pit_gsi,
                .flags = 0 });
    }
    // The SCI is level-triggered and, unlike ISA interrupts, active-high here.
    append_struct(out,
        pa::MadtInterruptSourceOverride { .type = pa::madt_type_interrupt_source_override,
            .length = sizeof(pa::MadtInterruptSourceOverride),
            .bus = 0,
            .source = config.sci_irq,
            .gsi = config.sci_irq,
            .flags = pa::mps_inti_polarity_active_high | pa::mps_inti_trigger_level });
    append_struct(out,
        pa::MadtLocalApicNmi { .type = pa::madt_type_local_apic_nmi,
            .length = sizeof(pa::MadtLocalApicNmi),
            .processor_uid = pa::madt_all_processors,
            .flags = 0,
            .lint = lint1 });

    pa::MadtHeader header {};
    header.header = make_header("APIC", out.size(), pa::madt_revision);
    header.local_apic_address = local_apic_address;
    header.flags = config.generation == 1 && config.pic ? pa::madt_flag_pcat_compat : 0;
    std::memcpy(out.data(), &header, sizeof(header));
    return out;
}

struct TableAddresses {
    uint64_t facs = 0;
    uint64_t dsdt = 0;
};

pa::Fadt build_fadt(const AcpiConfig& config, const TableAddresses& at)
{
    pa::Fadt fadt {};
    fadt.header = make_header("FACP", sizeof(pa::Fadt), pa::fadt_revision);
    fadt.firmware_ctrl = static_cast<uint32_t>(at.facs);
    fadt.dsdt = static_cast<uint32_t>(at.dsdt);
    fadt.x_firmware_ctrl = at.facs;
    fadt.x_dsdt = at.dsdt;
    fadt.sci_int = config.sci_irq;
    fadt.smi_cmd = 0; // no SMI command port: the platform is always in ACPI mode (SCI_EN reads as 1)

    const uint16_t evt = static_cast<uint16_t>(config.pm_base + pm1a_evt_offset);
    const uint16_t cnt = static_cast<uint16_t>(config.pm_base + pm1a_cnt_offset);
    const uint16_t tmr = static_cast<uint16_t>(config.pm_base + pm_tmr_offset);
    const uint16_t reset = static_cast<uint16_t>(config.pm_base + reset_reg_offset);
    fadt.pm1a_evt_blk = evt;
    fadt.pm1a_cnt_blk = cnt;
    fadt.pm_tmr_blk = tmr;
    fadt.pm1_evt_len = 4;
    fadt.pm1_cnt_len = 2;
    fadt.pm_tmr_len = 4;
    fadt.x_pm1a_evt_blk = system_io(evt, 32, pa::gas_access_word); // two 16-bit registers: status, enable
    fadt.x_pm1a_cnt_blk = system_io(cnt, 16, pa::gas_access_word);
    fadt.x_pm_tmr_blk = system_io(tmr, 32, pa::gas_access_dword);
    fadt.p_lvl2_lat = p_lvl2_not_supported;
    fadt.p_lvl3_lat = p_lvl3_not_supported;

    fadt.iapc_boot_arch = config.generation == 1
        ? pa::iapc_boot_arch_legacy_devices
        : pa::iapc_boot_arch_vga_not_present | pa::iapc_boot_arch_msi_not_supported;
    if (config.i8042)
        fadt.iapc_boot_arch |= pa::iapc_boot_arch_8042;
    if (!config.rtc)
        fadt.iapc_boot_arch |= pa::iapc_boot_arch_cmos_rtc_not_present;
    else
        fadt.century = cmos_century_index;

    // PWR_BUTTON clear: the fixed-feature power button in PM1 is present. SLP_BUTTON set: no sleep button.
    // FIX_RTC set: the RTC alarm is not a fixed-feature wake source.
    fadt.flags = pa::fadt_flag_wbinvd | pa::fadt_flag_proc_c1 | pa::fadt_flag_slp_button | pa::fadt_flag_fix_rtc
        | pa::fadt_flag_tmr_val_ext | pa::fadt_flag_reset_reg_sup;
    fadt.reset_reg = system_io(reset, 8, pa::gas_access_byte);
    fadt.reset_value = config.reset_value;
    fadt.fadt_minor_version = fadt_minor_version;

    uint64_t vendor = 0;
    std::memcpy(&vendor, "VMGEN\0\0", sizeof(vendor));
    fadt.hypervisor_vendor_identity = vendor;
    return fadt;
}

pa::Facs build_facs()
{
    pa::Facs facs {};
    put_chars(facs.signature, "FACS");
    facs.length = sizeof(pa::Facs);
    facs.version = pa::facs_version;
    return facs;
}

template <typename T> std::span<const uint8_t> bytes_of(const T& value)
{
    return { reinterpret_cast<const uint8_t*>(&value),
        sizeof(T) }; // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

} // namespace

Result<void> validate_acpi_config(const AcpiConfig& config)
{
    if (config.generation != 1 && config.generation != 2)
        return fail("invalid generation {} (must be 1 or 2)", config.generation);
    if (config.lapic_ids.empty())
        return fail("no vCPUs: at least one local APIC id is required");
    if (config.lapic_ids.size() > 255)
        return fail("{} vCPUs: at most 255 local APIC ids fit 8-bit processor UIDs", config.lapic_ids.size());
    std::set<uint8_t> seen;
    for (const uint8_t id : config.lapic_ids) {
        if (id == 0xff)
            return fail("local APIC id 0xff is the broadcast id");
        if (!seen.insert(id).second)
            return fail("local APIC id {} is used twice", id);
    }
    if (config.ioapic.address == 0)
        return fail("I/O APIC address is 0");
    if (config.pm_base == 0 || config.pm_base > 0x10000 - pm_block_size)
        return fail("PM block base {:#x} must be non-zero with {} ports below 0x10000", config.pm_base, pm_block_size);
    if (config.sci_irq > 15)
        return fail("SCI IRQ {} is not an ISA IRQ (0-15)", config.sci_irq);
    if (config.s5_sleep_type > 7)
        return fail("S5 sleep type {} does not fit SLP_TYP (3 bits)", config.s5_sleep_type);
    if (config.serial_ports.size() > max_serial_ports)
        return fail("{} serial ports: at most {}", config.serial_ports.size(), max_serial_ports);
    for (const AcpiConfig::SerialPort& port : config.serial_ports) {
        if (port.io_base == 0 || port.io_base > 0x10000 - 8)
            return fail("serial port base {:#x} is invalid", port.io_base);
        if (port.irq > 15)
            return fail("serial port {:#x}: IRQ {} is not an ISA IRQ", port.io_base, port.irq);
    }
    if (config.generation == 1) {
        if (config.vmbus)
            return fail("generation 1 has no VMBus in ACPI");
    } else {
        if (config.pic || config.pit || config.post_port || config.i8042)
            return fail("generation 2 has no 8259, 8254, 8042 or port 0x80");
    }
    if (config.vmbus) {
        const AcpiConfig::Vmbus& v = *config.vmbus;
        if (v.irq > 15)
            return fail("VMBus IRQ {} is not an ISA IRQ", v.irq);
        if (v.low_mmio_size == 0)
            return fail("VMBus low MMIO window is empty");
        if (v.low_mmio_base + v.low_mmio_size > four_gib || v.low_mmio_base + v.low_mmio_size < v.low_mmio_base)
            return fail("VMBus low MMIO window {:#x}+{:#x} must lie below 4 GiB", v.low_mmio_base, v.low_mmio_size);
        if (v.high_mmio_size != 0 && v.high_mmio_size - 1 > ~uint64_t { 0 } - v.high_mmio_base)
            return fail("VMBus high MMIO window {:#x}+{:#x} overflows", v.high_mmio_base, v.high_mmio_size);
    }
    return {};
}

Result<AcpiTables> build_acpi_tables(const AcpiConfig& config, uint64_t base_gpa, uint64_t max_size)
{
    TRY_CTX(validate_acpi_config(config), "ACPI configuration");
    if (base_gpa % table_alignment != 0)
        return fail("ACPI tables base {:#x} is not 16-byte aligned (the RSDP must be)", base_gpa);
    if (base_gpa >= four_gib || max_size > four_gib - base_gpa)
        return fail("ACPI tables at {:#x}+{:#x} must lie below 4 GiB (RSDT and FADT hold 32-bit addresses)", base_gpa,
            max_size);

    const std::vector<uint8_t> dsdt_body = TRY(build_dsdt_body(config));
    const std::vector<uint8_t> madt = build_madt(config);
    constexpr size_t table_count = 2; // the FADT and the MADT are listed in the RSDT and XSDT
    const uint64_t rsdt_size = sizeof(pa::TableHeader) + table_count * sizeof(uint32_t);
    const uint64_t xsdt_size = sizeof(pa::TableHeader) + table_count * sizeof(uint64_t);
    const uint64_t dsdt_size = sizeof(pa::TableHeader) + dsdt_body.size();

    Layout layout(max_size);
    const uint64_t rsdp_off = TRY(layout.place("RSDP", sizeof(pa::Rsdp), table_alignment));
    const uint64_t rsdt_off = TRY(layout.place("RSDT", rsdt_size, table_alignment));
    const uint64_t xsdt_off = TRY(layout.place("XSDT", xsdt_size, table_alignment));
    const uint64_t fadt_off = TRY(layout.place("FACP", sizeof(pa::Fadt), table_alignment));
    const uint64_t facs_off = TRY(layout.place("FACS", sizeof(pa::Facs), pa::facs_alignment));
    const uint64_t dsdt_off = TRY(layout.place("DSDT", dsdt_size, table_alignment));
    const uint64_t madt_off = TRY(layout.place("APIC", madt.size(), table_alignment));

    AcpiTables tables;
    tables.blob.assign(static_cast<size_t>(layout.end()), 0);
    std::vector<uint8_t>& blob = tables.blob;
    tables.rsdp_gpa = base_gpa + rsdp_off;
    tables.table_gpa
        = { { "RSDT", base_gpa + rsdt_off }, { "XSDT", base_gpa + xsdt_off }, { "FACP", base_gpa + fadt_off },
              { "FACS", base_gpa + facs_off }, { "DSDT", base_gpa + dsdt_off }, { "APIC", base_gpa + madt_off } };

    // DSDT.
    const pa::TableHeader dsdt_header = make_header("DSDT", dsdt_size, dsdt_revision);
    write_at(blob, dsdt_off, bytes_of(dsdt_header));
    write_at(blob, dsdt_off + sizeof(pa::TableHeader), dsdt_body);
    seal_table(blob, dsdt_off, dsdt_size);

    // MADT.
    write_at(blob, madt_off, madt);
    seal_table(blob, madt_off, madt.size());

    // FACS (no checksum) and FADT.
    write_at(blob, facs_off, bytes_of(build_facs()));
    const pa::Fadt fadt = build_fadt(config, { .facs = base_gpa + facs_off, .dsdt = base_gpa + dsdt_off });
    write_at(blob, fadt_off, bytes_of(fadt));
    seal_table(blob, fadt_off, sizeof(pa::Fadt));

    // RSDT and XSDT: the FADT and the MADT.
    const std::array<uint64_t, table_count> listed { base_gpa + fadt_off, base_gpa + madt_off };
    write_at(blob, rsdt_off, bytes_of(make_header("RSDT", rsdt_size, rsdt_revision)));
    write_at(blob, xsdt_off, bytes_of(make_header("XSDT", xsdt_size, xsdt_revision)));
    for (size_t i = 0; i < table_count; ++i) {
        const auto address32 = static_cast<uint32_t>(listed[i]);
        write_at(blob, rsdt_off + pa::sdt_entries_offset + i * sizeof(uint32_t), bytes_of(address32));
        write_at(blob, xsdt_off + pa::sdt_entries_offset + i * sizeof(uint64_t), bytes_of(listed[i]));
    }
    seal_table(blob, rsdt_off, rsdt_size);
    seal_table(blob, xsdt_off, xsdt_size);

    // RSDP: the 20-byte checksum first, then the extended checksum over all of it.
    pa::Rsdp rsdp {};
    put_chars(rsdp.signature, "RSD PTR ");
    put_chars(rsdp.oem_id, oem_id);
    rsdp.revision = pa::rsdp_revision;
    rsdp.rsdt_address = static_cast<uint32_t>(base_gpa + rsdt_off);
    rsdp.length = sizeof(pa::Rsdp);
    rsdp.xsdt_address = base_gpa + xsdt_off;
    rsdp.checksum = checksum_of(bytes_of(rsdp).first(pa::rsdp_v1_length));
    rsdp.extended_checksum = checksum_of(bytes_of(rsdp));
    write_at(blob, rsdp_off, bytes_of(rsdp));

    return tables;
}

} // namespace vmgen::vm::acpi
