#include "vm/devices/serial16550/serial16550.h"

#include "support/log.h"

#include <algorithm>

namespace vmgen::vm {

namespace {

constexpr uint8_t ier_mask = 0x0f;
constexpr uint8_t mcr_mask = 0x1f;
constexpr uint8_t msr_inputs_mask = 0xf0;

} // namespace

Serial16550::Serial16550(LineInterrupt& irq, SerialBackend* backend, std::string name)
    : m_irq(irq)
    , m_name(std::move(name))
    , m_backend(backend)
{
}

void Serial16550::set_backend(SerialBackend* backend)
{
    std::lock_guard lock(m_lock);
    m_backend = backend;
}

uint16_t Serial16550::divisor() const
{
    std::lock_guard lock(m_lock);
    return static_cast<uint16_t>(m_dll | (m_dlm << 8));
}

size_t Serial16550::trigger_level() const
{
    switch (m_fcr & fcr_trigger_mask) {
    case 0x00:
        return 1;
    case 0x40:
        return 4;
    case 0x80:
        return 8;
    default:
        return 14;
    }
}

Serial16550::Source Serial16550::pending_source() const
{
    if ((m_ier & ier_line_status) != 0 && m_lsr_errors != 0)
        return Source::line_status;
    if ((m_ier & ier_rx_data) != 0 && m_rx_count > 0) {
        if (!fifo_enabled() || m_rx_count >= trigger_level())
            return Source::rx_data;
        return Source::rx_timeout;
    }
    if ((m_ier & ier_thre) != 0 && m_thre_pending)
        return Source::thre;
    if ((m_ier & ier_modem_status) != 0 && m_msr_delta != 0)
        return Source::modem_status;
    return Source::none;
}

void Serial16550::update_irq()
{
    const bool gate_open = (m_mcr & mcr_out2) != 0 && (m_mcr & mcr_loop) == 0;
    const bool level = gate_open && pending_source() != Source::none;
    if (level != m_line_high) {
        m_line_high = level;
        m_irq.set_level(level);
    }
}

uint8_t Serial16550::modem_inputs() const
{
    if ((m_mcr & mcr_loop) == 0)
        return m_external_modem;
    uint8_t v = 0;
    if ((m_mcr & mcr_rts) != 0)
        v |= msr_cts;
    if ((m_mcr & mcr_dtr) != 0)
        v |= msr_dsr;
    if ((m_mcr & mcr_out1) != 0)
        v |= msr_ri;
    if ((m_mcr & mcr_out2) != 0)
        v |= msr_dcd;
    return v;
}

void Serial16550::modem_inputs_changed(uint8_t before)
{
    const uint8_t after = modem_inputs();
    const uint8_t changed = before ^ after;
    if ((changed & msr_cts) != 0)
        m_msr_delta |= msr_dcts;
    if ((changed & msr_dsr) != 0)
        m_msr_delta |= msr_ddsr;
    if ((before & msr_ri) != 0 && (after & msr_ri) == 0) // trailing edge of RI only
        m_msr_delta |= msr_teri;
    if ((changed & msr_dcd) != 0)
        m_msr_delta |= msr_ddcd;
}

void Serial16550::set_modem_inputs(uint8_t msr_bits)
{
    std::lock_guard lock(m_lock);
    const uint8_t before = modem_inputs();
    m_external_modem = msr_bits & msr_inputs_mask;
    modem_inputs_changed(before);
    update_irq();
}

void Serial16550::clear_rx()
{
    m_rx_head = 0;
    m_rx_count = 0;
}

void Serial16550::push_rx(uint8_t byte)
{
    if (m_rx_count < rx_capacity()) {
        m_rx[(m_rx_head + m_rx_count) % fifo_size] = byte;
        ++m_rx_count;
        return;
    }
    // Overrun. Without FIFOs the new character replaces the unread one; with FIFOs the FIFO is kept and
    // the new character is lost.
    m_lsr_errors |= lsr_oe;
    if (!fifo_enabled())
        m_rx[m_rx_head] = byte;
    log_debug(m_name, "receiver overrun");
}

size_t Serial16550::rx_space() const
{
    std::lock_guard lock(m_lock);
    if ((m_mcr & mcr_loop) != 0)
        return 0;
    return rx_capacity() - m_rx_count;
}

size_t Serial16550::receive(std::span<const uint8_t> bytes)
{
    std::lock_guard lock(m_lock);
    if ((m_mcr & mcr_loop) != 0)
        return 0;
    const size_t n = std::min(bytes.size(), rx_capacity() - m_rx_count);
    for (size_t i = 0; i < n; ++i)
        push_rx(bytes[i]);
    if (n > 0)
        update_irq();
    return n;
}

void Serial16550::transmit(uint8_t byte)
{
    // THR is written: its empty interrupt clears, the byte leaves at once, THR is empty again.
    m_thre_pending = false;
    update_irq();
    if ((m_mcr & mcr_loop) != 0)
        push_rx(byte);
    else if (m_backend != nullptr)
        m_backend->write_bytes(std::span<const uint8_t>(&byte, 1));
    m_thre_pending = true;
    update_irq();
}

uint8_t Serial16550::read_register(uint8_t reg)
{
    const bool dlab = (m_lcr & lcr_dlab) != 0;
    switch (reg) {
    case reg_data:
        if (dlab)
            return m_dll;
        if (m_rx_count > 0) {
            m_last_rx = m_rx[m_rx_head];
            m_rx_head = (m_rx_head + 1) % fifo_size;
            --m_rx_count;
            update_irq();
        }
        return m_last_rx; // an empty receiver returns the last character again
    case reg_ier:
        return dlab ? m_dlm : m_ier;
    case reg_iir: {
        const Source source = pending_source();
        uint8_t id = iir_no_interrupt;
        switch (source) {
        case Source::none:
            break;
        case Source::line_status:
            id = iir_line_status;
            break;
        case Source::rx_data:
            id = iir_rx_data;
            break;
        case Source::rx_timeout:
            id = iir_rx_timeout;
            break;
        case Source::thre:
            id = iir_thre;
            // Reading IIR while THRE is the reported source clears it.
            m_thre_pending = false;
            update_irq();
            break;
        case Source::modem_status:
            id = iir_modem_status;
            break;
        }
        return static_cast<uint8_t>(id | (fifo_enabled() ? iir_fifo_enabled : 0));
    }
    case reg_lcr:
        return m_lcr;
    case reg_mcr:
        return m_mcr;
    case reg_lsr: {
        const uint8_t value = static_cast<uint8_t>(m_lsr_errors | lsr_thre | lsr_temt | (m_rx_count > 0 ? lsr_dr : 0));
        if (m_lsr_errors != 0) {
            m_lsr_errors = 0;
            update_irq();
        }
        return value;
    }
    case reg_msr: {
        const uint8_t value = static_cast<uint8_t>(modem_inputs() | m_msr_delta);
        if (m_msr_delta != 0) {
            m_msr_delta = 0;
            update_irq();
        }
        return value;
    }
    default: // reg_scr
        return m_scr;
    }
}

void Serial16550::write_register(uint8_t reg, uint8_t value)
{
    const bool dlab = (m_lcr & lcr_dlab) != 0;
    switch (reg) {
    case reg_data:
        if (dlab)
            m_dll = value;
        else
            transmit(value);
        return;
    case reg_ier:
        if (dlab) {
            m_dlm = value;
            return;
        }
        // Enabling the THRE interrupt while THR is empty (always, here) raises it.
        if ((value & ier_thre) != 0 && (m_ier & ier_thre) == 0)
            m_thre_pending = true;
        m_ier = value & ier_mask;
        update_irq();
        return;
    case reg_iir: { // FCR
        const bool enable = (value & fcr_enable) != 0;
        if (enable != fifo_enabled())
            clear_rx(); // switching between 16450 and FIFO mode empties the FIFOs
        if (enable) {
            if ((value & fcr_clear_rx) != 0)
                clear_rx();
            // The transmitter has no FIFO contents to clear: bytes leave as they are written.
            m_fcr = value & (fcr_enable | fcr_dma_mode | fcr_trigger_mask);
        } else {
            m_fcr = 0; // the other bits are only written with FCR0 set
        }
        update_irq();
        return;
    }
    case reg_lcr:
        m_lcr = value;
        return;
    case reg_mcr: {
        const uint8_t before = modem_inputs();
        m_mcr = value & mcr_mask;
        modem_inputs_changed(before);
        update_irq();
        return;
    }
    case reg_lsr:
    case reg_msr:
        log_debug(m_name, "write {:#04x} to read-only register {} ignored", value, reg);
        return;
    default: // reg_scr
        m_scr = value;
        return;
    }
}

void Serial16550::read(uint64_t offset, std::span<uint8_t> data)
{
    std::lock_guard lock(m_lock);
    // Wider accesses reach consecutive registers, as the ISA bus splits them into byte cycles.
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t reg = offset + i;
        if (offset >= register_count || reg >= register_count) {
            log_debug(m_name, "read at offset {:#x} outside the registers", reg);
            data[i] = 0xff;
            continue;
        }
        data[i] = read_register(static_cast<uint8_t>(reg));
    }
}

void Serial16550::write(uint64_t offset, std::span<const uint8_t> data)
{
    std::lock_guard lock(m_lock);
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t reg = offset + i;
        if (offset >= register_count || reg >= register_count) {
            log_debug(m_name, "write {:#04x} at offset {:#x} outside the registers ignored", data[i], reg);
            continue;
        }
        write_register(static_cast<uint8_t>(reg), data[i]);
    }
}

} // namespace vmgen::vm
