// The DSDT namespace for each generation. Everything lives under \_SB; only devices that exist are
// described. The power button is the fixed-feature button (FADT PWR_BUTTON clear), so it has no device.
#include "vm/acpi/aml_builder.h"
#include "vm/acpi/tables.h"

namespace vmgen::vm::acpi {
namespace {

using aml::device;
using aml::eisa_id;
using aml::integer;
using aml::name;
using aml::resource_template;

// Processor objects (ACPI0007, §8.4) whose _UID matches the MADT Processor Local APIC entries.
void add_processors(const AcpiConfig& config, std::vector<Aml>& sb)
{
    for (size_t i = 0; i < config.lapic_ids.size(); ++i) {
        sb.push_back(device(fmt::format("C{:03X}", i),
            {
                name("_HID", aml::string("ACPI0007")),
                name("_UID", integer(i)),
            }));
    }
}

Aml rtc_device()
{
    return device("RTC0",
        {
            name("_HID", eisa_id("PNP0B00")),
            name("_CRS", resource_template({ aml::io(0x70, 2), aml::irq(8) })),
        });
}

void add_serial_ports(const AcpiConfig& config, std::vector<Aml>& sb)
{
    for (size_t i = 0; i < config.serial_ports.size(); ++i) {
        const AcpiConfig::SerialPort& port = config.serial_ports[i];
        sb.push_back(device(fmt::format("COM{}", i + 1),
            {
                name("_HID", eisa_id("PNP0501")),
                name("_UID", integer(i + 1)),
                name("_CRS", resource_template({ aml::io(port.io_base, 8), aml::irq(port.irq) })),
            }));
    }
}

// Motherboard resources (PNP0C02): ports that no other device claims, so the OS does not hand them out.
Aml motherboard_resources(const AcpiConfig& config)
{
    std::vector<ResourceDescriptor> resources;
    if (config.generation == 1 && config.post_port) {
        resources.push_back(aml::io(0x80, 1));
        resources.push_back(aml::io(0x92, 1));
    }
    resources.push_back(aml::io(config.pm_base, pm_block_size));
    return device("MBRS",
        {
            name("_HID", eisa_id("PNP0C02")),
            name("_UID", integer(0)),
            name("_CRS", resource_template(resources)),
        });
}

void add_generation1_devices(const AcpiConfig& config, std::vector<Aml>& sb)
{
    if (config.pic) {
        sb.push_back(device("PIC0",
            {
                name("_HID", eisa_id("PNP0000")),
                name("_CRS", resource_template({ aml::io(0x20, 2), aml::io(0xa0, 2), aml::io(0x4d0, 2), aml::irq(2) })),
            }));
    }
    if (config.pit) {
        sb.push_back(device("PIT0",
            {
                name("_HID", eisa_id("PNP0100")),
                name("_CRS", resource_template({ aml::io(0x40, 4), aml::irq(0) })),
            }));
    }
}

// The VMBus as Hyper-V describes it: a module device (ACPI0004) whose _CRS lists the MMIO windows that
// VMBus devices allocate from, containing the VMBus device itself (_HID "VMBus") whose _CRS holds its IRQ.
// Linux's hv_vmbus matches _HID "VMBus", walks the _CRS of the device and its ACPI0004 parent, and fails
// to load if either evaluation fails.
Aml vmbus_module(const AcpiConfig::Vmbus& vmbus)
{
    std::vector<ResourceDescriptor> windows;
    windows.push_back(aml::qword_memory(
        { .base = vmbus.low_mmio_base, .length = vmbus.low_mmio_size, .usage = aml::ResourceUsage::Producer }));
    if (vmbus.high_mmio_size != 0) {
        windows.push_back(aml::qword_memory(
            { .base = vmbus.high_mmio_base, .length = vmbus.high_mmio_size, .usage = aml::ResourceUsage::Producer }));
    }
    return device("VMOD",
        {
            name("_HID", aml::string("ACPI0004")),
            name("_UID", integer(0)),
            name("_CRS", resource_template(windows)),
            device("VMBS",
                {
                    name("_HID", aml::string("VMBus")),
                    name("_UID", integer(0)),
                    name("_STA", integer(0x0f)),
                    name("_CRS", resource_template({ aml::irq(vmbus.irq) })),
                }),
        });
}

} // namespace

Result<std::vector<uint8_t>> build_dsdt_body(const AcpiConfig& config)
{
    TRY(validate_acpi_config(config));

    std::vector<Aml> sb;
    add_processors(config, sb);
    if (config.rtc)
        sb.push_back(rtc_device());
    if (config.generation == 1)
        add_generation1_devices(config, sb);
    add_serial_ports(config, sb);
    sb.push_back(motherboard_resources(config));
    if (config.generation == 2 && config.vmbus)
        sb.push_back(vmbus_module(*config.vmbus));

    Aml body = aml::scope("\\_SB", sb);
    // \_S5 (§7.4.2.4): {SLP_TYPa, SLP_TYPb, reserved, reserved}.
    body.append(name("\\_S5", aml::package({ integer(config.s5_sleep_type), integer(0), integer(0), integer(0) })));
    return TRY_CTX(body.finish(), "building the DSDT");
}

} // namespace vmgen::vm::acpi
