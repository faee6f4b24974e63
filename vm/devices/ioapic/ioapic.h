// IoApic: an Intel 82093AA I/O Advanced Programmable Interrupt Controller with 24 input pins (Intel
// "82093AA I/O Advanced Programmable Interrupt Controller (IOAPIC)" datasheet, plus the version 0x20
// EOI register of later ICH I/O APICs). Generation 2 machines run it in userspace beside KVM's in-kernel
// local APICs (split irqchip): each delivery becomes an MSI (Intel SDM vol. 3, "Message Signalled
// Interrupts") through an MsiTarget.
//
// MMIO window (registered at 0xFEC00000, length 0x1000), 32-bit accesses only:
//   0x00 IOREGSEL  index of the register seen through IOWIN
//   0x10 IOWIN     data window
//   0x40 EOI       write a vector: end of interrupt for level-triggered entries with that vector
// Indirect registers: 0x00 ID, 0x01 VER, 0x02 ARB, 0x10 + 2 * pin (+1) redirection entry (low/high half).
//
// Thread safety: every method may be called from any thread. MsiTarget::signal_msi and the route_changed
// callback run with the device lock held, so that deliveries and route updates are seen in order; they
// must not call back into the IoApic.
#pragma once

#include "vm/io/io_handler.h"
#include "vm/io/line_interrupt.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace vmgen::vm {

// Where a redirection entry sends its interrupt, as an MSI, for the machine to mirror into KVM.
struct IoApicRoute {
    uint64_t msi_address = 0;
    uint32_t msi_data = 0;
    bool masked = true;
    bool level = false; // level-triggered: KVM must report its EOI
};

class IoApic final : public IoHandler {
public:
    static constexpr uint64_t default_base = 0xfec00000;
    static constexpr uint64_t mmio_length = 0x1000;
    static constexpr unsigned pin_count = 24;
    static constexpr uint8_t version = 0x20;

    // MMIO offsets.
    static constexpr uint64_t ioregsel_offset = 0x00;
    static constexpr uint64_t iowin_offset = 0x10;
    static constexpr uint64_t eoi_offset = 0x40;

    // Indirect register indices.
    static constexpr uint8_t reg_id = 0x00;
    static constexpr uint8_t reg_version = 0x01;
    static constexpr uint8_t reg_arbitration = 0x02;
    static constexpr uint8_t reg_redirection_base = 0x10;

    // Redirection entry fields.
    static constexpr uint64_t rte_vector_mask = 0xff;
    static constexpr unsigned rte_delivery_mode_shift = 8;
    static constexpr uint64_t rte_dest_mode_logical = 1ull << 11;
    static constexpr uint64_t rte_delivery_status = 1ull << 12;
    static constexpr uint64_t rte_polarity_low = 1ull << 13;
    static constexpr uint64_t rte_remote_irr = 1ull << 14;
    static constexpr uint64_t rte_trigger_level = 1ull << 15;
    static constexpr uint64_t rte_masked = 1ull << 16;
    static constexpr unsigned rte_destination_shift = 56;

    using RouteChanged = std::function<void(unsigned pin, const IoApicRoute& route)>;

    // `target` must outlive the IoApic. `route_changed` (optional) is called with an entry's new route
    // every time the guest writes either half of that entry.
    explicit IoApic(MsiTarget& target, RouteChanged route_changed = {});

    [[nodiscard]] std::string_view name() const override { return "ioapic"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Drives input `pin` (the electrical level, before the entry's polarity is applied).
    void set_irq(unsigned pin, bool level);
    // End of interrupt for `vector`: clears remote IRR of every level-triggered entry with that vector
    // and delivers again if its line is still asserted.
    void end_of_interrupt(uint8_t vector);

    // A LineInterrupt that drives `pin` of this IoApic (which must outlive it).
    [[nodiscard]] std::unique_ptr<LineInterrupt> line(unsigned pin);

    // The current 64-bit redirection entry of `pin` (all ones for a pin that does not exist).
    [[nodiscard]] uint64_t redirection_entry(unsigned pin) const;
    // The MSI a redirection entry delivers.
    [[nodiscard]] static IoApicRoute route_of(uint64_t entry);

private:
    struct Pin {
        uint64_t entry = rte_masked;
        bool input = false; // electrical level last set by set_irq
    };

    [[nodiscard]] uint32_t read_register(uint8_t index) const;
    void write_register(uint8_t index, uint32_t value);
    [[nodiscard]] static bool asserted(const Pin& p);
    // Delivers a level-triggered pin if it is asserted, unmasked and has no interrupt in service.
    void deliver_level_if_pending(Pin& p);
    void deliver(const Pin& p);

    MsiTarget& m_target;
    RouteChanged m_route_changed;
    mutable std::mutex m_lock;
    uint32_t m_ioregsel = 0;
    uint8_t m_id = 0;
    std::array<Pin, pin_count> m_pins {};
};

} // namespace vmgen::vm
