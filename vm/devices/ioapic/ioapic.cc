#include "vm/devices/ioapic/ioapic.h"

#include "support/log.h"

namespace vmgen::vm {

namespace {

// Guest-writable bits of a redirection entry: vector, delivery mode, destination mode, polarity, trigger
// mode, mask (low half) and the destination (high half). Delivery status and remote IRR are read-only.
constexpr uint64_t rte_writable = 0xff00'0000'0001'afffull;

constexpr uint64_t msi_address_base = 0xfee00000;

class IoApicLine final : public LineInterrupt {
public:
    IoApicLine(IoApic& apic, unsigned pin)
        : m_apic(apic)
        , m_pin(pin)
    {
    }
    void set_level(bool high) override { m_apic.set_irq(m_pin, high); }

private:
    IoApic& m_apic;
    unsigned m_pin;
};

} // namespace

IoApic::IoApic(MsiTarget& target, RouteChanged route_changed)
    : m_target(target)
    , m_route_changed(std::move(route_changed))
{
}

IoApicRoute IoApic::route_of(uint64_t entry)
{
    const uint64_t dest = (entry >> rte_destination_shift) & 0xff;
    const bool logical = (entry & rte_dest_mode_logical) != 0;
    const bool level = (entry & rte_trigger_level) != 0;
    const auto vector = static_cast<uint32_t>(entry & rte_vector_mask);
    const auto delivery_mode = static_cast<uint32_t>((entry >> rte_delivery_mode_shift) & 0x7);

    IoApicRoute route;
    route.msi_address = msi_address_base | (dest << 12) | (logical ? 1u << 2 : 0u);
    route.msi_data = vector | (delivery_mode << 8) | (level ? (1u << 14) | (1u << 15) : 0u);
    route.masked = (entry & rte_masked) != 0;
    route.level = level;
    return route;
}

uint64_t IoApic::redirection_entry(unsigned pin) const
{
    if (pin >= pin_count)
        return ~0ull;
    std::lock_guard lock(m_lock);
    return m_pins[pin].entry;
}

std::unique_ptr<LineInterrupt> IoApic::line(unsigned pin)
{
    if (pin >= pin_count)
        log_warn("ioapic", "line for pin {} requested; only {} pins exist, its input will be ignored", pin, pin_count);
    return std::make_unique<IoApicLine>(*this, pin);
}

bool IoApic::asserted(const Pin& p)
{
    const bool active_low = (p.entry & rte_polarity_low) != 0;
    return p.input != active_low;
}

void IoApic::deliver(const Pin& p)
{
    const IoApicRoute route = route_of(p.entry);
    m_target.signal_msi(route.msi_address, route.msi_data);
}

void IoApic::deliver_level_if_pending(Pin& p)
{
    if ((p.entry & rte_trigger_level) == 0 || (p.entry & rte_masked) != 0 || (p.entry & rte_remote_irr) != 0)
        return;
    if (!asserted(p))
        return;
    p.entry |= rte_remote_irr;
    deliver(p);
}

void IoApic::set_irq(unsigned pin, bool level)
{
    if (pin >= pin_count) {
        log_warn("ioapic", "set_irq on pin {} ignored (only {} pins)", pin, pin_count);
        return;
    }
    std::lock_guard lock(m_lock);
    Pin& p = m_pins[pin];
    const bool was_asserted = asserted(p);
    p.input = level;
    const bool now_asserted = asserted(p);
    if ((p.entry & rte_trigger_level) != 0) {
        deliver_level_if_pending(p);
        return;
    }
    // Edge-triggered: one interrupt per inactive-to-active transition; edges while masked are lost.
    if (now_asserted && !was_asserted && (p.entry & rte_masked) == 0)
        deliver(p);
}

void IoApic::end_of_interrupt(uint8_t vector)
{
    std::lock_guard lock(m_lock);
    for (Pin& p : m_pins) {
        if ((p.entry & rte_trigger_level) == 0 || (p.entry & rte_vector_mask) != vector)
            continue;
        p.entry &= ~rte_remote_irr;
        deliver_level_if_pending(p);
    }
}

uint32_t IoApic::read_register(uint8_t index) const
{
    switch (index) {
    case reg_id:
        return static_cast<uint32_t>(m_id & 0xf) << 24;
    case reg_version:
        return version | ((pin_count - 1) << 16);
    case reg_arbitration:
        // The arbitration ID is loaded from the APIC ID.
        return static_cast<uint32_t>(m_id & 0xf) << 24;
    default:
        break;
    }
    if (index >= reg_redirection_base && index < reg_redirection_base + 2 * pin_count) {
        const unsigned pin = (index - reg_redirection_base) / 2u;
        const bool high = ((index - reg_redirection_base) & 1u) != 0;
        const uint64_t entry = m_pins[pin].entry;
        return static_cast<uint32_t>(high ? entry >> 32 : entry);
    }
    log_debug("ioapic", "read of undefined register {:#x}", index);
    return 0xffffffff;
}

void IoApic::write_register(uint8_t index, uint32_t value)
{
    switch (index) {
    case reg_id:
        m_id = static_cast<uint8_t>((value >> 24) & 0xf);
        return;
    case reg_version:
    case reg_arbitration:
        log_debug("ioapic", "write {:#x} to read-only register {:#x} ignored", value, index);
        return;
    default:
        break;
    }
    if (index < reg_redirection_base || index >= reg_redirection_base + 2 * pin_count) {
        log_debug("ioapic", "write {:#x} to undefined register {:#x} ignored", value, index);
        return;
    }
    const unsigned pin = (index - reg_redirection_base) / 2u;
    const bool high = ((index - reg_redirection_base) & 1u) != 0;
    Pin& p = m_pins[pin];
    const uint64_t half_mask = high ? 0xffff'ffff'0000'0000ull : 0x0000'0000'ffff'ffffull;
    const uint64_t shifted = high ? static_cast<uint64_t>(value) << 32 : value;
    p.entry = (p.entry & ~(half_mask & rte_writable)) | (shifted & half_mask & rte_writable);
    // Remote IRR has no meaning for edge-triggered entries; switching to edge clears it.
    if ((p.entry & rte_trigger_level) == 0)
        p.entry &= ~rte_remote_irr;

    if (m_route_changed)
        m_route_changed(pin, route_of(p.entry));
    // Unmasking (or reprogramming) a level-triggered entry whose line is asserted delivers it.
    deliver_level_if_pending(p);
}

void IoApic::read(uint64_t offset, std::span<uint8_t> data)
{
    if (data.size() != 4 || (offset != ioregsel_offset && offset != iowin_offset)) {
        log_debug("ioapic", "read of {} bytes at offset {:#x}", data.size(), offset);
        io_fill(data, ~0ull);
        return;
    }
    std::lock_guard lock(m_lock);
    if (offset == ioregsel_offset)
        io_fill(data, m_ioregsel);
    else
        io_fill(data, read_register(static_cast<uint8_t>(m_ioregsel)));
}

void IoApic::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (data.size() != 4 || (offset != ioregsel_offset && offset != iowin_offset && offset != eoi_offset)) {
        log_debug("ioapic", "write of {} bytes at offset {:#x} ignored", data.size(), offset);
        return;
    }
    const auto value = static_cast<uint32_t>(io_value(data));
    if (offset == eoi_offset) {
        end_of_interrupt(static_cast<uint8_t>(value));
        return;
    }
    std::lock_guard lock(m_lock);
    if (offset == ioregsel_offset)
        m_ioregsel = value & 0xff;
    else
        write_register(static_cast<uint8_t>(m_ioregsel), value);
}

} // namespace vmgen::vm
