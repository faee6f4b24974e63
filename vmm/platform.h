// Platform: the devices of a generation 1 or generation 2 machine on their buses, and the ACPI
// description of them. Devices persist across guest resets; only the KVM VM, RAM and the generation 2
// I/O APIC are rebuilt (by KvmMachine).
//
// Port map (both generations unless noted):
//   0x3f8 COM1, 0x2f8 COM2   generation 1 always; generation 2 only when configured
//   0x70-0x71  CMOS RTC (IRQ 8)
//   0x400-0x40f ACPI PM block (PM1a event, PM1a control, PM timer, reset register; SCI = IRQ 9)
//   0x80 POST code, 0x92 System Control Port A   generation 1 only
//   PIC and PIT (KVM in-kernel)                  generation 1 only
// Everything else reads all ones.
#pragma once

#include "support/result.h"
#include "vm/acpi/tables.h"
#include "vm/devices/acpi_pm/acpi_pm.h"
#include "vm/devices/cmos_rtc/cmos_rtc.h"
#include "vm/devices/serial16550/backends.h"
#include "vm/devices/serial16550/serial16550.h"
#include "vm/io/io_bus.h"
#include "vm/memory/guest_memory.h"
#include "vmm/interrupt_router.h"
#include "vmm/machine_config.h"

#include <functional>
#include <memory>

namespace vmgen::vmm {

struct PlatformEvents {
    std::function<void()> power_off;
    std::function<void()> reset;
};

namespace ports {
inline constexpr uint16_t com1 = 0x3f8;
inline constexpr uint16_t com2 = 0x2f8;
inline constexpr uint8_t com1_irq = 4;
inline constexpr uint8_t com2_irq = 3;
inline constexpr uint16_t rtc = 0x70;
inline constexpr uint8_t rtc_irq = 8;
inline constexpr uint16_t acpi_pm = 0x400;
inline constexpr uint8_t sci_irq = 9;
inline constexpr uint16_t post_code = 0x80;
inline constexpr uint16_t system_control_a = 0x92;
inline constexpr uint8_t vmbus_irq = 5;
} // namespace ports

class Platform {
public:
    static Result<std::unique_ptr<Platform>> create(const MachineConfig& config, InterruptRouter& router,
                                                    PlatformEvents events);
    ~Platform();

    vm::IoBus& pio() { return m_pio; }
    vm::IoBus& mmio() { return m_mmio; }

    // The ACPI description of this platform with `vcpus` processors and this RAM layout.
    [[nodiscard]] vm::acpi::AcpiConfig acpi_config(unsigned vcpus, const vm::GuestMemory& memory) const;

    void press_power_button();

private:
    Platform(const MachineConfig& config, PlatformEvents events) : m_config(config), m_events(std::move(events)) {}
    Result<void> add_serial(unsigned index, uint16_t base, uint8_t irq, InterruptRouter& router);

    MachineConfig m_config;
    PlatformEvents m_events;
    vm::IoBus m_pio{"port I/O"};
    vm::IoBus m_mmio{"MMIO"};
    std::vector<std::unique_ptr<vm::LineInterrupt>> m_lines;
    std::shared_ptr<vm::AcpiPm> m_pm;
    std::shared_ptr<vm::CmosRtc> m_rtc;
    struct SerialPort {
        std::shared_ptr<vm::Serial16550> uart;
        std::unique_ptr<vm::SerialBackend> backend;
        std::unique_ptr<vm::SerialEndpoint> endpoint;
        uint16_t base = 0;
        uint8_t irq = 0;
    };
    std::vector<SerialPort> m_serial;
};

} // namespace vmgen::vmm
