// InterruptRouter: where device interrupt lines and MSIs go in the current boot of a machine.
// Generation 1: ISA/GSI lines into KVM's in-kernel PIC + I/O APIC (KVM_IRQ_LINE).
// Generation 2: lines into the VMM's own I/O APIC, whose messages reach KVM's local APICs as MSIs.
// Devices hold LineInterrupts that point here, so they survive a machine reset (which rebuilds the KVM VM).
#pragma once

#include "hv/kvm.h"
#include "vm/devices/ioapic/ioapic.h"
#include "vm/io/line_interrupt.h"

#include <array>
#include <memory>
#include <mutex>

namespace vmgen::vmm {

class InterruptRouter final : public vm::MsiTarget {
public:
    // Attaches the KVM VM of the current boot (nullptr while between boots: interrupts are dropped).
    void attach(hv::Vm* vm, vm::IoApic* ioapic);

    void set_gsi(uint32_t gsi, bool level);
    void signal_msi(uint64_t address, uint32_t data) override;
    // Split irqchip: KVM reported the EOI of a level-triggered vector.
    void end_of_interrupt(uint8_t vector);
    // Split irqchip: the I/O APIC changed a redirection entry; mirrors it into KVM's routing table.
    void route_changed(unsigned pin, const vm::IoApicRoute& route);

    // A line for GSI `gsi` (ISA IRQ n is GSI n in both generations' MADT).
    [[nodiscard]] std::unique_ptr<vm::LineInterrupt> line(uint32_t gsi);

private:
    void push_routes_locked();

    std::mutex m_lock;
    hv::Vm* m_vm = nullptr;
    vm::IoApic* m_ioapic = nullptr;
    std::array<vm::IoApicRoute, vm::IoApic::pin_count> m_routes{};
    std::array<bool, 32> m_levels{}; // last level per GSI, to skip redundant KVM_IRQ_LINE calls
};

} // namespace vmgen::vmm
