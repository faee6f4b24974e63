#include "vmm/interrupt_router.h"

#include "support/log.h"

#include <vector>

namespace vmgen::vmm {

namespace {

class RouterLine final : public vm::LineInterrupt {
public:
    RouterLine(InterruptRouter& router, uint32_t gsi) : m_router(router), m_gsi(gsi) {}
    void set_level(bool high) override { m_router.set_gsi(m_gsi, high); }

private:
    InterruptRouter& m_router;
    uint32_t m_gsi;
};

} // namespace

void InterruptRouter::attach(hv::Vm* vm, vm::IoApic* ioapic)
{
    std::lock_guard lock(m_lock);
    m_vm = vm;
    m_ioapic = ioapic;
    m_levels = {};
    m_routes = {};
}

std::unique_ptr<vm::LineInterrupt> InterruptRouter::line(uint32_t gsi) { return std::make_unique<RouterLine>(*this, gsi); }

void InterruptRouter::set_gsi(uint32_t gsi, bool level)
{
    vm::IoApic* ioapic = nullptr;
    {
        std::lock_guard lock(m_lock);
        if (m_vm == nullptr)
            return;
        if (gsi < m_levels.size()) {
            if (m_levels[gsi] == level)
                return;
            m_levels[gsi] = level;
        }
        ioapic = m_ioapic;
        if (ioapic == nullptr) {
            if (auto r = m_vm->set_irq_line(gsi, level); !r)
                log_warn("irq", "{}", r.error().message());
            return;
        }
    }
    // The I/O APIC calls back into signal_msi(): do not hold our lock across it.
    ioapic->set_irq(gsi, level);
}

void InterruptRouter::signal_msi(uint64_t address, uint32_t data)
{
    std::lock_guard lock(m_lock);
    if (m_vm == nullptr)
        return;
    if (auto r = m_vm->signal_msi(address, data); !r)
        log_warn("irq", "{}", r.error().message());
}

void InterruptRouter::end_of_interrupt(uint8_t vector)
{
    vm::IoApic* ioapic = nullptr;
    {
        std::lock_guard lock(m_lock);
        ioapic = m_ioapic;
    }
    if (ioapic != nullptr)
        ioapic->end_of_interrupt(vector);
}

void InterruptRouter::route_changed(unsigned pin, const vm::IoApicRoute& route)
{
    std::lock_guard lock(m_lock);
    if (pin >= m_routes.size())
        return;
    m_routes[pin] = route;
    push_routes_locked();
}

void InterruptRouter::push_routes_locked()
{
    if (m_vm == nullptr)
        return;
    // KVM derives the vectors whose EOI it must report from the MSI routes of the reserved I/O APIC GSIs.
    std::vector<hv::Vm::MsiRoute> routes;
    for (uint32_t pin = 0; pin < m_routes.size(); ++pin) {
        const auto& r = m_routes[pin];
        if (r.masked || r.msi_address == 0)
            continue;
        routes.push_back(hv::Vm::MsiRoute{pin, r.msi_address, r.msi_data});
    }
    if (auto r = m_vm->set_msi_routes(routes); !r)
        log_warn("irq", "{}", r.error().message());
}

} // namespace vmgen::vmm
