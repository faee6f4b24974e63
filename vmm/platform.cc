#include "vmm/platform.h"

#include "support/log.h"
#include "vm/devices/post_code/post_code.h"
#include "vm/devices/system_control/system_control.h"
#include "vmm/boot/layout.h"

#include <algorithm>

namespace vmgen::vmm {

namespace {

// VMBus MMIO windows for generation 2 (described in \_SB.VMOD._CRS; used by synthetic video and vPCI).
constexpr uint64_t vmbus_low_mmio_base = 0xf8000000;
constexpr uint64_t vmbus_low_mmio_size = 0x04000000; // 64 MiB, below the I/O APIC at 0xfec00000
constexpr uint64_t vmbus_high_mmio_size = 1ull << 30;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

} // namespace

Platform::~Platform()
{
    // Endpoints run threads that feed their UART: stop them before the UARTs go away.
    for (auto& port : m_serial)
        port.endpoint.reset();
}

Result<std::unique_ptr<Platform>> Platform::create(const MachineConfig& config, InterruptRouter& router,
                                                   PlatformEvents events)
{
    auto platform = std::unique_ptr<Platform>(new Platform(config, std::move(events)));
    auto& p = *platform;
    const bool gen1 = config.generation == Generation::One;

    // CMOS RTC: both generations (wall-clock time; generation 2 keeps it, as Hyper-V does).
    p.m_lines.push_back(router.line(ports::rtc_irq));
    p.m_rtc = std::make_shared<vm::CmosRtc>(*p.m_lines.back());
    uint64_t low = std::min(config.memory_bytes, layout::mmio_hole_start);
    p.m_rtc->set_memory_size(low, config.memory_bytes - low);
    TRY(p.m_pio.add(ports::rtc, vm::CmosRtc::port_count, p.m_rtc));

    // ACPI PM block with the SCI.
    p.m_lines.push_back(router.line(ports::sci_irq));
    p.m_pm = std::make_shared<vm::AcpiPm>(
        *p.m_lines.back(), [&p] { p.m_events.power_off(); }, [&p] { p.m_events.reset(); });
    TRY(p.m_pio.add(ports::acpi_pm, vm::AcpiPm::block_length, p.m_pm));

    // COM ports: generation 1 always has both (as in Hyper-V); generation 2 only configured ones.
    for (unsigned i = 0; i < 2; ++i) {
        if (gen1 || config.com[i].kind != SerialPortConfig::Kind::None)
            TRY(p.add_serial(i, i == 0 ? ports::com1 : ports::com2, i == 0 ? ports::com1_irq : ports::com2_irq,
                             router));
    }

    if (gen1) {
        TRY(p.m_pio.add(ports::post_code, 1, std::make_shared<vm::PostCode>()));
        TRY(p.m_pio.add(ports::system_control_a, 1,
                        std::make_shared<vm::SystemControlA>([&p] { p.m_events.reset(); })));
    }
    return platform;
}

Result<void> Platform::add_serial(unsigned index, uint16_t base, uint8_t irq, InterruptRouter& router)
{
    const auto& cfg = m_config.com[index];
    SerialPort port;
    port.base = base;
    port.irq = irq;
    m_lines.push_back(router.line(irq));
    port.uart = std::make_shared<vm::Serial16550>(*m_lines.back(), nullptr, fmt::format("com{}", index + 1));
    switch (cfg.kind) {
    case SerialPortConfig::Kind::None:
        break;
    case SerialPortConfig::Kind::Stdio:
        port.backend = vm::stdio_serial_backend();
        port.uart->set_backend(port.backend.get());
        break;
    case SerialPortConfig::Kind::File:
        port.backend = TRY_CTX(vm::open_serial_file(cfg.path), "COM{}", index + 1);
        port.uart->set_backend(port.backend.get());
        break;
    case SerialPortConfig::Kind::UnixSocket:
        port.endpoint = TRY_CTX(vm::listen_serial_unix(cfg.path, *port.uart), "COM{}", index + 1);
        port.uart->set_backend(port.endpoint.get());
        break;
    }
    TRY(m_pio.add(base, vm::Serial16550::register_count, port.uart));
    m_serial.push_back(std::move(port));
    return {};
}

vm::acpi::AcpiConfig Platform::acpi_config(unsigned vcpus, const vm::GuestMemory& memory) const
{
    const bool gen1 = m_config.generation == Generation::One;
    vm::acpi::AcpiConfig c;
    c.generation = gen1 ? 1 : 2;
    for (unsigned i = 0; i < vcpus; ++i)
        c.lapic_ids.push_back(static_cast<uint8_t>(i));
    // The I/O APIC id follows the local APIC ids (ids are shared on the APIC bus).
    c.ioapic.id = static_cast<uint8_t>(std::min(vcpus, 254u));
    c.ioapic.address = static_cast<uint32_t>(layout::ioapic);
    c.ioapic.gsi_base = 0;
    c.pm_base = ports::acpi_pm;
    c.reset_value = vm::AcpiPm::reset_value;
    c.s5_sleep_type = vm::AcpiPm::s5_sleep_type;
    c.sci_irq = ports::sci_irq;
    for (const auto& port : m_serial)
        c.serial_ports.push_back({port.base, port.irq});
    c.rtc = true;
    if (gen1) {
        c.pic = true;
        c.pit = true;
        c.post_port = true;
    } else {
        vm::acpi::AcpiConfig::Vmbus vmbus;
        vmbus.irq = ports::vmbus_irq;
        vmbus.low_mmio_base = vmbus_low_mmio_base;
        vmbus.low_mmio_size = vmbus_low_mmio_size;
        vmbus.high_mmio_base = align_up(std::max<uint64_t>(memory.end(), 4ull << 30), 1ull << 30);
        vmbus.high_mmio_size = vmbus_high_mmio_size;
        c.vmbus = vmbus;
    }
    return c;
}

void Platform::press_power_button() { m_pm->press_power_button(); }

} // namespace vmgen::vmm
