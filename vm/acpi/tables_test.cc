#include "vm/acpi/tables.h"

#include "protocols/acpi/tables.h"
#include "vm/acpi/aml_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string_view>

namespace vmgen::vm::acpi {
namespace {

namespace pa = protocols::acpi;

constexpr uint64_t base = 0xe0000;
constexpr uint64_t max_size = 128 * 1024;

AcpiConfig gen1_config(size_t cpus = 4)
{
    AcpiConfig config;
    config.generation = 1;
    for (size_t i = 0; i < cpus; ++i)
        config.lapic_ids.push_back(static_cast<uint8_t>(i));
    config.pm_base = 0x400;
    config.serial_ports = { { .io_base = 0x3f8, .irq = 4 }, { .io_base = 0x2f8, .irq = 3 } };
    config.pic = true;
    config.pit = true;
    config.post_port = true;
    return config;
}

AcpiConfig gen2_config(size_t cpus = 4)
{
    AcpiConfig config;
    config.generation = 2;
    for (size_t i = 0; i < cpus; ++i)
        config.lapic_ids.push_back(static_cast<uint8_t>(i * 2));
    config.pm_base = 0x400;
    config.serial_ports = { { .io_base = 0x3f8, .irq = 4 } };
    config.vmbus = AcpiConfig::Vmbus { .irq = 5,
        .low_mmio_base = 0xf8000000,
        .low_mmio_size = 0x4000000,
        .high_mmio_base = 0xfe0000000,
        .high_mmio_size = 0x20000000 };
    return config;
}

AcpiTables build(const AcpiConfig& config)
{
    auto tables = build_acpi_tables(config, base, max_size);
    EXPECT_TRUE(tables) << tables.error().message();
    return tables ? *tables : AcpiTables {};
}

uint8_t byte_sum(std::span<const uint8_t> bytes)
{
    return static_cast<uint8_t>(std::accumulate(bytes.begin(), bytes.end(), 0u));
}

template <typename T> T read_at(const AcpiTables& tables, uint64_t gpa)
{
    T value {};
    const uint64_t offset = gpa - base;
    EXPECT_LE(offset + sizeof(T), tables.blob.size());
    if (offset + sizeof(T) <= tables.blob.size())
        std::memcpy(&value, tables.blob.data() + offset, sizeof(T));
    return value;
}

// The bytes of the table at `gpa`, as long as its header says.
std::span<const uint8_t> table_at(const AcpiTables& tables, uint64_t gpa)
{
    const auto header = read_at<pa::TableHeader>(tables, gpa);
    const uint64_t offset = gpa - base;
    if (offset + header.length > tables.blob.size()) {
        ADD_FAILURE() << "table at " << gpa << " runs past the blob";
        return {};
    }
    return std::span<const uint8_t>(tables.blob).subspan(offset, header.length);
}

std::string_view signature_of(const pa::TableHeader& header)
{
    return { header.signature, sizeof(header.signature) };
}

std::string_view dsdt_text(const AcpiTables& tables)
{
    const auto dsdt = table_at(tables, tables.table_gpa.at("DSDT"));
    return { reinterpret_cast<const char*>(dsdt.data()), dsdt.size() };
}

bool contains_bytes(std::string_view haystack, const std::vector<uint8_t>& needle)
{
    return haystack.find(std::string_view(reinterpret_cast<const char*>(needle.data()), needle.size()))
        != std::string_view::npos;
}

std::vector<uint8_t> eisa_bytes(std::string_view id)
{
    auto bytes = aml::eisa_id(id).finish();
    EXPECT_TRUE(bytes);
    return bytes ? *bytes : std::vector<uint8_t> {};
}

struct MadtEntries {
    std::vector<pa::MadtLocalApic> lapics;
    std::vector<pa::MadtIoApic> ioapics;
    std::vector<pa::MadtInterruptSourceOverride> overrides;
    std::vector<pa::MadtLocalApicNmi> nmis;
};

MadtEntries parse_madt(std::span<const uint8_t> madt)
{
    MadtEntries entries;
    size_t offset = sizeof(pa::MadtHeader);
    while (offset + 2 <= madt.size()) {
        const uint8_t type = madt[offset];
        const uint8_t length = madt[offset + 1];
        if (length < 2 || offset + length > madt.size()) {
            ADD_FAILURE() << "bad MADT entry length " << int { length } << " at " << offset;
            break;
        }
        const auto copy = [&](auto& out) {
            using T = std::remove_reference_t<decltype(out)>::value_type;
            ASSERT_EQ(length, sizeof(T));
            T value {};
            std::memcpy(&value, madt.data() + offset, sizeof(T));
            out.push_back(value);
        };
        switch (type) {
        case pa::madt_type_local_apic:
            copy(entries.lapics);
            break;
        case pa::madt_type_io_apic:
            copy(entries.ioapics);
            break;
        case pa::madt_type_interrupt_source_override:
            copy(entries.overrides);
            break;
        case pa::madt_type_local_apic_nmi:
            copy(entries.nmis);
            break;
        default:
            ADD_FAILURE() << "unexpected MADT entry type " << int { type };
        }
        offset += length;
    }
    EXPECT_EQ(offset, madt.size());
    return entries;
}

TEST(AcpiTables, RsdpAtOffsetZeroWithValidChecksums)
{
    for (const AcpiConfig& config : { gen1_config(), gen2_config() }) {
        const AcpiTables tables = build(config);
        EXPECT_EQ(tables.rsdp_gpa, base);
        const auto rsdp = read_at<pa::Rsdp>(tables, tables.rsdp_gpa);
        EXPECT_EQ(std::string_view(rsdp.signature, 8), "RSD PTR ");
        EXPECT_EQ(std::string_view(rsdp.oem_id, 6), "VMGEN ");
        EXPECT_EQ(rsdp.revision, 2);
        EXPECT_EQ(uint32_t { rsdp.length }, 36u);
        const auto bytes = std::span<const uint8_t>(tables.blob).first(36);
        EXPECT_EQ(byte_sum(bytes.first(20)), 0);
        EXPECT_EQ(byte_sum(bytes), 0);
        EXPECT_EQ(uint32_t { rsdp.rsdt_address }, tables.table_gpa.at("RSDT"));
        EXPECT_EQ(uint64_t { rsdp.xsdt_address }, tables.table_gpa.at("XSDT"));
        EXPECT_LE(tables.blob.size(), max_size);
    }
}

TEST(AcpiTables, EveryTableHasAValidChecksumAndHeader)
{
    for (const AcpiConfig& config : { gen1_config(1), gen1_config(), gen2_config(1), gen2_config() }) {
        const AcpiTables tables = build(config);
        ASSERT_EQ(tables.table_gpa.size(), 6u);
        for (const auto& [signature, gpa] : tables.table_gpa) {
            EXPECT_EQ(gpa % 16, 0u) << signature;
            if (signature == "FACS")
                continue;
            const auto header = read_at<pa::TableHeader>(tables, gpa);
            EXPECT_EQ(signature_of(header), signature);
            EXPECT_EQ(std::string_view(header.oem_id, 6), "VMGEN ");
            EXPECT_EQ(std::string_view(header.oem_table_id, 8), "VMGN" + signature);
            EXPECT_EQ(std::string_view(header.creator_id, 4), "VMGN");
            EXPECT_EQ(byte_sum(table_at(tables, gpa)), 0) << signature;
        }
    }
}

TEST(AcpiTables, XsdtAndRsdtListFadtAndMadt)
{
    const AcpiTables tables = build(gen2_config());
    const auto xsdt = table_at(tables, tables.table_gpa.at("XSDT"));
    const auto rsdt = table_at(tables, tables.table_gpa.at("RSDT"));
    ASSERT_EQ(xsdt.size(), 36u + 2 * 8);
    ASSERT_EQ(rsdt.size(), 36u + 2 * 4);
    std::vector<std::string> listed;
    for (size_t i = 0; i < 2; ++i) {
        uint64_t address64 = 0;
        uint32_t address32 = 0;
        std::memcpy(&address64, xsdt.data() + 36 + 8 * i, 8);
        std::memcpy(&address32, rsdt.data() + 36 + 4 * i, 4);
        EXPECT_EQ(address64, address32);
        const auto header = read_at<pa::TableHeader>(tables, address64);
        listed.emplace_back(signature_of(header));
        EXPECT_EQ(tables.table_gpa.at(std::string(signature_of(header))), address64);
    }
    EXPECT_EQ(listed, (std::vector<std::string> { "FACP", "APIC" }));
}

TEST(AcpiTables, FadtPointsAtFacsAndDsdt)
{
    const AcpiTables tables = build(gen1_config());
    const auto fadt = read_at<pa::Fadt>(tables, tables.table_gpa.at("FACP"));
    EXPECT_EQ(uint32_t { fadt.header.length }, 276u);
    EXPECT_EQ(fadt.header.revision, 6);
    EXPECT_EQ(uint32_t { fadt.dsdt }, tables.table_gpa.at("DSDT"));
    EXPECT_EQ(uint64_t { fadt.x_dsdt }, tables.table_gpa.at("DSDT"));
    EXPECT_EQ(uint32_t { fadt.firmware_ctrl }, tables.table_gpa.at("FACS"));
    EXPECT_EQ(uint64_t { fadt.x_firmware_ctrl }, tables.table_gpa.at("FACS"));
    EXPECT_EQ(tables.table_gpa.at("FACS") % 64, 0u);
    const auto facs = read_at<pa::Facs>(tables, tables.table_gpa.at("FACS"));
    EXPECT_EQ(std::string_view(facs.signature, 4), "FACS");
    EXPECT_EQ(uint32_t { facs.length }, 64u);
    EXPECT_EQ(facs.version, 2);
    uint64_t vendor = 0;
    std::memcpy(&vendor, "VMGEN\0\0", 8);
    EXPECT_EQ(uint64_t { fadt.hypervisor_vendor_identity }, vendor);
}

TEST(AcpiTables, FadtPmBlockSciAndReset)
{
    AcpiConfig config = gen1_config();
    config.pm_base = 0xb000;
    config.sci_irq = 9;
    config.reset_value = 0x06;
    const AcpiTables tables = build(config);
    const auto fadt = read_at<pa::Fadt>(tables, tables.table_gpa.at("FACP"));
    EXPECT_EQ(uint16_t { fadt.sci_int }, 9);
    EXPECT_EQ(uint32_t { fadt.smi_cmd }, 0u);
    EXPECT_EQ(uint32_t { fadt.pm1a_evt_blk }, 0xb000u);
    EXPECT_EQ(uint32_t { fadt.pm1a_cnt_blk }, 0xb004u);
    EXPECT_EQ(uint32_t { fadt.pm_tmr_blk }, 0xb008u);
    EXPECT_EQ(uint32_t { fadt.pm1b_evt_blk }, 0u);
    EXPECT_EQ(uint32_t { fadt.gpe0_blk }, 0u);
    EXPECT_EQ(fadt.pm1_evt_len, 4);
    EXPECT_EQ(fadt.pm1_cnt_len, 2);
    EXPECT_EQ(fadt.pm_tmr_len, 4);
    const auto check_gas = [](const pa::GenericAddress& gas, uint64_t address, uint8_t bits) {
        EXPECT_EQ(gas.address_space_id, pa::gas_space_system_io);
        EXPECT_EQ(uint64_t { gas.address }, address);
        EXPECT_EQ(gas.register_bit_width, bits);
        EXPECT_EQ(gas.register_bit_offset, 0);
    };
    check_gas(fadt.x_pm1a_evt_blk, 0xb000, 32);
    check_gas(fadt.x_pm1a_cnt_blk, 0xb004, 16);
    check_gas(fadt.x_pm_tmr_blk, 0xb008, 32);
    check_gas(fadt.reset_reg, 0xb00c, 8);
    EXPECT_EQ(fadt.reset_reg.access_size, pa::gas_access_byte);
    EXPECT_EQ(fadt.reset_value, 0x06);
    EXPECT_GT(uint16_t { fadt.p_lvl2_lat }, 100);
    EXPECT_GT(uint16_t { fadt.p_lvl3_lat }, 1000);

    const uint32_t flags = fadt.flags;
    EXPECT_TRUE(flags & pa::fadt_flag_wbinvd);
    EXPECT_TRUE(flags & pa::fadt_flag_proc_c1);
    EXPECT_FALSE(flags & pa::fadt_flag_pwr_button) << "the fixed-feature power button must be present";
    EXPECT_TRUE(flags & pa::fadt_flag_slp_button);
    EXPECT_TRUE(flags & pa::fadt_flag_tmr_val_ext);
    EXPECT_TRUE(flags & pa::fadt_flag_reset_reg_sup);
    EXPECT_FALSE(flags & pa::fadt_flag_hw_reduced_acpi);
}

TEST(AcpiTables, FadtBootArchitecturePerGeneration)
{
    const auto boot_arch = [](const AcpiConfig& config) {
        const AcpiTables tables = build(config);
        return uint16_t { read_at<pa::Fadt>(tables, tables.table_gpa.at("FACP")).iapc_boot_arch };
    };
    EXPECT_EQ(boot_arch(gen1_config()), pa::iapc_boot_arch_legacy_devices);
    auto with_8042 = gen1_config();
    with_8042.i8042 = true;
    EXPECT_EQ(boot_arch(with_8042), pa::iapc_boot_arch_legacy_devices | pa::iapc_boot_arch_8042);
    auto gen2_8042 = gen2_config();
    gen2_8042.i8042 = true;
    EXPECT_FALSE(validate_acpi_config(gen2_8042));
    // The century byte of the CMOS RTC is declared when there is an RTC.
    auto tables = build_acpi_tables(gen2_config(), 0xe0000, 0x20000);
    ASSERT_TRUE(tables);
    EXPECT_EQ(read_at<pa::Fadt>(*tables, tables->table_gpa.at("FACP")).century, 0x32);
    const uint16_t gen2 = boot_arch(gen2_config());
    EXPECT_FALSE(gen2 & pa::iapc_boot_arch_legacy_devices);
    EXPECT_FALSE(gen2 & pa::iapc_boot_arch_8042);
    EXPECT_TRUE(gen2 & pa::iapc_boot_arch_vga_not_present);
    EXPECT_TRUE(gen2 & pa::iapc_boot_arch_msi_not_supported);
    EXPECT_FALSE(gen2 & pa::iapc_boot_arch_cmos_rtc_not_present);
    AcpiConfig no_rtc = gen2_config();
    no_rtc.rtc = false;
    EXPECT_TRUE(boot_arch(no_rtc) & pa::iapc_boot_arch_cmos_rtc_not_present);
}

TEST(AcpiTables, MadtGeneration1)
{
    AcpiConfig config = gen1_config(4);
    config.lapic_ids = { 0, 1, 4, 7 };
    config.ioapic = { .id = 8, .address = 0xfec00000, .gsi_base = 0 };
    const AcpiTables tables = build(config);
    const auto madt = table_at(tables, tables.table_gpa.at("APIC"));
    pa::MadtHeader header {};
    std::memcpy(&header, madt.data(), sizeof(header));
    EXPECT_EQ(uint32_t { header.local_apic_address }, 0xfee00000u);
    EXPECT_EQ(uint32_t { header.flags }, pa::madt_flag_pcat_compat);

    const MadtEntries entries = parse_madt(madt);
    ASSERT_EQ(entries.lapics.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(entries.lapics[i].processor_uid, i);
        EXPECT_EQ(entries.lapics[i].apic_id, config.lapic_ids[i]);
        EXPECT_EQ(uint32_t { entries.lapics[i].flags }, pa::madt_local_apic_enabled);
    }
    ASSERT_EQ(entries.ioapics.size(), 1u);
    EXPECT_EQ(entries.ioapics[0].io_apic_id, 8);
    EXPECT_EQ(uint32_t { entries.ioapics[0].address }, 0xfec00000u);
    EXPECT_EQ(uint32_t { entries.ioapics[0].gsi_base }, 0u);

    ASSERT_EQ(entries.overrides.size(), 2u);
    EXPECT_EQ(entries.overrides[0].bus, 0);
    EXPECT_EQ(entries.overrides[0].source, 0);
    EXPECT_EQ(uint32_t { entries.overrides[0].gsi }, 2u);
    EXPECT_EQ(uint16_t { entries.overrides[0].flags }, 0);
    EXPECT_EQ(entries.overrides[1].source, 9);
    EXPECT_EQ(uint32_t { entries.overrides[1].gsi }, 9u);
    EXPECT_EQ(uint16_t { entries.overrides[1].flags }, pa::mps_inti_polarity_active_high | pa::mps_inti_trigger_level);

    ASSERT_EQ(entries.nmis.size(), 1u);
    EXPECT_EQ(entries.nmis[0].processor_uid, pa::madt_all_processors);
    EXPECT_EQ(entries.nmis[0].lint, 1);
}

TEST(AcpiTables, MadtGeneration2HasNoPcatCompatOrPitOverride)
{
    const AcpiTables tables = build(gen2_config(3));
    const auto madt = table_at(tables, tables.table_gpa.at("APIC"));
    pa::MadtHeader header {};
    std::memcpy(&header, madt.data(), sizeof(header));
    EXPECT_EQ(uint32_t { header.flags }, 0u);
    const MadtEntries entries = parse_madt(madt);
    EXPECT_EQ(entries.lapics.size(), 3u);
    ASSERT_EQ(entries.overrides.size(), 1u);
    EXPECT_EQ(entries.overrides[0].source, 9);
    EXPECT_EQ(uint16_t { entries.overrides[0].flags }, pa::mps_inti_polarity_active_high | pa::mps_inti_trigger_level);
    EXPECT_EQ(entries.nmis.size(), 1u);
}

TEST(AcpiTables, MadtWith255Cpus)
{
    AcpiConfig config = gen2_config(0);
    for (int i = 0; i < 255; ++i)
        config.lapic_ids.push_back(static_cast<uint8_t>(i));
    const AcpiTables tables = build(config);
    const MadtEntries entries = parse_madt(table_at(tables, tables.table_gpa.at("APIC")));
    ASSERT_EQ(entries.lapics.size(), 255u);
    EXPECT_EQ(entries.lapics[254].processor_uid, 254);
    EXPECT_TRUE(contains_bytes(dsdt_text(tables), { 'C', '0', 'F', 'E' }));
}

TEST(AcpiTables, Generation2DsdtHasVmbusAndNoLegacyDevices)
{
    const AcpiTables tables = build(gen2_config());
    const std::string_view dsdt = dsdt_text(tables);
    EXPECT_NE(dsdt.find("VMBus"), std::string_view::npos);
    EXPECT_NE(dsdt.find("ACPI0004"), std::string_view::npos);
    ASSERT_NE(dsdt.find("VMOD"), std::string_view::npos);
    ASSERT_NE(dsdt.find("VMBS"), std::string_view::npos);
    EXPECT_LT(dsdt.find("VMOD"), dsdt.find("VMBS"));
    EXPECT_NE(dsdt.find("_S5_"), std::string_view::npos);
    EXPECT_TRUE(contains_bytes(dsdt, eisa_bytes("PNP0B00")));
    EXPECT_TRUE(contains_bytes(dsdt, eisa_bytes("PNP0501")));
    EXPECT_TRUE(contains_bytes(dsdt, eisa_bytes("PNP0C02")));
    for (const char* legacy : { "PNP0000", "PNP0100", "PNP0303", "PNP0700", "PNP0400" })
        EXPECT_FALSE(contains_bytes(dsdt, eisa_bytes(legacy))) << legacy;
    EXPECT_EQ(dsdt.find("PIC0"), std::string_view::npos);
    EXPECT_EQ(dsdt.find("PIT0"), std::string_view::npos);
    // The MMIO windows are in VMOD's _CRS: QWord address space descriptors with the configured ranges.
    std::vector<uint8_t> low_min { 0x00, 0x00, 0x00, 0xf8, 0x00, 0x00, 0x00, 0x00 };
    EXPECT_TRUE(contains_bytes(dsdt, low_min));
    EXPECT_TRUE(contains_bytes(dsdt, { 0x8a, 0x2b, 0x00 }));
}

TEST(AcpiTables, Generation1DsdtHasLegacyDevicesAndNoVmbus)
{
    const AcpiTables tables = build(gen1_config());
    const std::string_view dsdt = dsdt_text(tables);
    for (const char* id : { "PNP0000", "PNP0100", "PNP0B00", "PNP0501", "PNP0C02" })
        EXPECT_TRUE(contains_bytes(dsdt, eisa_bytes(id))) << id;
    EXPECT_NE(dsdt.find("COM1"), std::string_view::npos);
    EXPECT_NE(dsdt.find("COM2"), std::string_view::npos);
    EXPECT_NE(dsdt.find("_S5_"), std::string_view::npos);
    EXPECT_EQ(dsdt.find("VMBus"), std::string_view::npos);
    EXPECT_EQ(dsdt.find("ACPI0004"), std::string_view::npos);
    // Port 0x80 and 0x92 reserved as motherboard resources: IO (Decode16, 0x80, 0x80, 1, 1).
    EXPECT_TRUE(contains_bytes(dsdt, { 0x47, 0x01, 0x80, 0x00, 0x80, 0x00, 0x01, 0x01 }));
    EXPECT_TRUE(contains_bytes(dsdt, { 0x47, 0x01, 0x92, 0x00, 0x92, 0x00, 0x01, 0x01 }));
    // The PM block: IO (Decode16, 0x400, 0x400, 1, 16).
    EXPECT_TRUE(contains_bytes(dsdt, { 0x47, 0x01, 0x00, 0x04, 0x00, 0x04, 0x01, 0x10 }));
}

TEST(AcpiTables, S5PackageUsesConfiguredSleepType)
{
    AcpiConfig config = gen2_config();
    config.s5_sleep_type = 7;
    const AcpiTables tables = build(config);
    EXPECT_TRUE(contains_bytes(
        dsdt_text(tables), { 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x07, 0x00, 0x00, 0x00 }));
}

TEST(AcpiTables, SerialPortsOnlyWhenPresent)
{
    AcpiConfig config = gen2_config();
    config.serial_ports.clear();
    const AcpiTables tables = build(config);
    EXPECT_FALSE(contains_bytes(dsdt_text(tables), eisa_bytes("PNP0501")));
    EXPECT_EQ(dsdt_text(tables).find("COM1"), std::string_view::npos);
}

TEST(AcpiTables, DsdtBodyFollowsTheHeader)
{
    const AcpiConfig config = gen2_config();
    const AcpiTables tables = build(config);
    auto body = build_dsdt_body(config);
    ASSERT_TRUE(body);
    const auto dsdt = table_at(tables, tables.table_gpa.at("DSDT"));
    ASSERT_EQ(dsdt.size(), 36 + body->size());
    EXPECT_TRUE(std::equal(body->begin(), body->end(), dsdt.begin() + 36));
    EXPECT_EQ(read_at<pa::TableHeader>(tables, tables.table_gpa.at("DSDT")).revision, 2);
}

TEST(AcpiTables, RejectsInvalidConfigurations)
{
    const auto rejects = [](const AcpiConfig& config, std::string_view expected) {
        auto result = build_acpi_tables(config, base, max_size);
        ASSERT_FALSE(result) << "accepted: expected an error about " << expected;
        EXPECT_NE(result.error().message().find(expected), std::string::npos) << result.error().message();
    };
    AcpiConfig c = gen1_config();
    c.generation = 3;
    rejects(c, "generation");
    c = gen1_config(0);
    rejects(c, "no vCPUs");
    c = gen2_config(0);
    c.lapic_ids.assign(256, 0);
    rejects(c, "256 vCPUs");
    c = gen1_config();
    c.lapic_ids = { 0, 1, 1 };
    rejects(c, "used twice");
    c = gen1_config();
    c.lapic_ids = { 0xff };
    rejects(c, "broadcast");
    c = gen1_config();
    c.pm_base = 0;
    rejects(c, "PM block");
    c = gen1_config();
    c.pm_base = 0xfff8;
    rejects(c, "PM block");
    c = gen1_config();
    c.sci_irq = 16;
    rejects(c, "SCI");
    c = gen1_config();
    c.s5_sleep_type = 8;
    rejects(c, "sleep type");
    c = gen1_config();
    c.serial_ports.push_back({ .io_base = 0x3e8, .irq = 16 });
    rejects(c, "IRQ 16");
    c = gen1_config();
    c.vmbus = gen2_config().vmbus;
    rejects(c, "VMBus");
    c = gen2_config();
    c.pic = true;
    rejects(c, "8259");
    c = gen2_config();
    c.vmbus->low_mmio_size = 0;
    rejects(c, "low MMIO");
    c = gen2_config();
    c.vmbus->low_mmio_base = 0xffff0000;
    rejects(c, "below 4 GiB");
}

TEST(AcpiTables, RejectsBadPlacement)
{
    auto too_small = build_acpi_tables(gen2_config(), base, 256);
    ASSERT_FALSE(too_small);
    EXPECT_NE(too_small.error().message().find("do not fit"), std::string::npos) << too_small.error().message();
    EXPECT_FALSE(build_acpi_tables(gen2_config(), base + 8, max_size));
    EXPECT_FALSE(build_acpi_tables(gen2_config(), 0xffff0000, 0x20000));

    // Exactly the size needed fits; one byte less does not.
    auto tables = build_acpi_tables(gen1_config(), base, max_size);
    ASSERT_TRUE(tables);
    const uint64_t needed = tables->blob.size();
    EXPECT_TRUE(build_acpi_tables(gen1_config(), base, needed));
    EXPECT_FALSE(build_acpi_tables(gen1_config(), base, needed - 1));
}

TEST(AcpiTables, AddressesFollowBaseGpa)
{
    const AcpiTables low = build(gen2_config());
    auto moved = build_acpi_tables(gen2_config(), 0x100000, max_size);
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->rsdp_gpa, 0x100000u);
    for (const auto& [signature, gpa] : low.table_gpa)
        EXPECT_EQ(moved->table_gpa.at(signature) - 0x100000, gpa - base) << signature;
    const auto fadt = read_at<pa::Fadt>(low, low.table_gpa.at("FACP"));
    EXPECT_EQ(uint64_t { fadt.x_dsdt }, low.table_gpa.at("DSDT"));
}

} // namespace
} // namespace vmgen::vm::acpi
