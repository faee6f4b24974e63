// Serial16550: a National Semiconductor PC16550D / 16550A UART with 16-byte FIFOs (National "PC16550D
// Universal Asynchronous Receiver/Transmitter with FIFOs" datasheet), eight registers at base+0..7:
//   0 RBR (read) / THR (write); DLL when LCR.DLAB      4 MCR: DTR, RTS, OUT1, OUT2, LOOP
//   1 IER; DLM when LCR.DLAB                           5 LSR: DR, OE, PE, FE, BI, THRE, TEMT, FIFO error
//   2 IIR (read) / FCR (write)                         6 MSR: delta bits 3:0, CTS, DSR, RI, DCD
//   3 LCR (bit 7 = DLAB)                               7 SCR
//
// Virtual-line model: a byte written to THR is sent at once (THRE and TEMT always read 1), so the THRE
// interrupt comes back as soon as THR is written (the line drops and rises again: a new edge). Received
// bytes come from the host through receive(); no character timing is emulated, so in FIFO mode the
// character timeout interrupt is pending whenever the FIFO holds bytes below the trigger level.
// The interrupt output reaches the line only while MCR.OUT2 is set and loopback is off (on the PC, OUT2
// gates the IRQ driver and loopback forces the OUT2 pin inactive). In loopback mode transmitted bytes
// go to the receiver and the outside is disconnected: nothing reaches the backend and receive() accepts
// nothing. Thread safe: the backend and the interrupt line are called with the device lock held.
#pragma once

#include "vm/io/io_handler.h"
#include "vm/io/line_interrupt.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>

namespace vmgen::vm {

// Where the guest's transmitted bytes go.
class SerialBackend {
public:
    virtual ~SerialBackend() = default;
    virtual void write_bytes(std::span<const uint8_t> bytes) = 0;
};

class Serial16550 final : public IoHandler {
public:
    static constexpr uint64_t register_count = 8;
    static constexpr size_t fifo_size = 16;

    // Register offsets.
    static constexpr uint8_t reg_data = 0; // RBR / THR / DLL
    static constexpr uint8_t reg_ier = 1; // IER / DLM
    static constexpr uint8_t reg_iir = 2; // IIR / FCR
    static constexpr uint8_t reg_lcr = 3;
    static constexpr uint8_t reg_mcr = 4;
    static constexpr uint8_t reg_lsr = 5;
    static constexpr uint8_t reg_msr = 6;
    static constexpr uint8_t reg_scr = 7;

    static constexpr uint8_t ier_rx_data = 0x01;
    static constexpr uint8_t ier_thre = 0x02;
    static constexpr uint8_t ier_line_status = 0x04;
    static constexpr uint8_t ier_modem_status = 0x08;

    static constexpr uint8_t iir_no_interrupt = 0x01;
    static constexpr uint8_t iir_modem_status = 0x00;
    static constexpr uint8_t iir_thre = 0x02;
    static constexpr uint8_t iir_rx_data = 0x04;
    static constexpr uint8_t iir_line_status = 0x06;
    static constexpr uint8_t iir_rx_timeout = 0x0c;
    static constexpr uint8_t iir_fifo_enabled = 0xc0;

    static constexpr uint8_t fcr_enable = 0x01;
    static constexpr uint8_t fcr_clear_rx = 0x02;
    static constexpr uint8_t fcr_clear_tx = 0x04;
    static constexpr uint8_t fcr_dma_mode = 0x08;
    static constexpr uint8_t fcr_trigger_mask = 0xc0;

    static constexpr uint8_t lcr_dlab = 0x80;

    static constexpr uint8_t mcr_dtr = 0x01;
    static constexpr uint8_t mcr_rts = 0x02;
    static constexpr uint8_t mcr_out1 = 0x04;
    static constexpr uint8_t mcr_out2 = 0x08;
    static constexpr uint8_t mcr_loop = 0x10;

    static constexpr uint8_t lsr_dr = 0x01;
    static constexpr uint8_t lsr_oe = 0x02;
    static constexpr uint8_t lsr_pe = 0x04;
    static constexpr uint8_t lsr_fe = 0x08;
    static constexpr uint8_t lsr_bi = 0x10;
    static constexpr uint8_t lsr_thre = 0x20;
    static constexpr uint8_t lsr_temt = 0x40;
    static constexpr uint8_t lsr_fifo_error = 0x80;

    static constexpr uint8_t msr_dcts = 0x01;
    static constexpr uint8_t msr_ddsr = 0x02;
    static constexpr uint8_t msr_teri = 0x04;
    static constexpr uint8_t msr_ddcd = 0x08;
    static constexpr uint8_t msr_cts = 0x10;
    static constexpr uint8_t msr_dsr = 0x20;
    static constexpr uint8_t msr_ri = 0x40;
    static constexpr uint8_t msr_dcd = 0x80;

    // `irq` must outlive the device; `backend` (may be null: a disconnected port) too, until replaced.
    // `name` tags log lines ("com1").
    explicit Serial16550(LineInterrupt& irq, SerialBackend* backend = nullptr, std::string name = "serial");

    [[nodiscard]] std::string_view name() const override { return m_name; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Replaces the backend (null disconnects the port).
    void set_backend(SerialBackend* backend);

    // Host to guest: queues as many of `bytes` as the receiver has room for and returns how many.
    size_t receive(std::span<const uint8_t> bytes);
    // Room in the receiver: 16 bytes with FIFOs enabled, 1 without, 0 in loopback mode.
    [[nodiscard]] size_t rx_space() const;

    // The modem inputs seen outside loopback mode, as MSR bits 7:4 (default CTS, DSR and DCD: a
    // connected null modem). Changes set the MSR delta bits.
    void set_modem_inputs(uint8_t msr_bits);

    [[nodiscard]] uint16_t divisor() const;

private:
    enum class Source { none, line_status, rx_data, rx_timeout, thre, modem_status };

    // All below: caller holds m_lock.
    [[nodiscard]] bool fifo_enabled() const { return (m_fcr & fcr_enable) != 0; }
    [[nodiscard]] size_t rx_capacity() const { return fifo_enabled() ? fifo_size : 1; }
    [[nodiscard]] size_t trigger_level() const;
    [[nodiscard]] Source pending_source() const;
    [[nodiscard]] uint8_t modem_inputs() const; // MSR bits 7:4 currently seen
    void modem_inputs_changed(uint8_t before);
    void push_rx(uint8_t byte);
    void clear_rx();
    void transmit(uint8_t byte);
    void update_irq();
    [[nodiscard]] uint8_t read_register(uint8_t reg);
    void write_register(uint8_t reg, uint8_t value);

    LineInterrupt& m_irq;
    std::string m_name;

    mutable std::mutex m_lock;
    SerialBackend* m_backend;
    std::array<uint8_t, fifo_size> m_rx {};
    size_t m_rx_head = 0;
    size_t m_rx_count = 0;
    uint8_t m_last_rx = 0;
    uint8_t m_dll = 0x0c; // 9600 baud (the datasheet leaves it undefined after reset)
    uint8_t m_dlm = 0;
    uint8_t m_ier = 0;
    uint8_t m_fcr = 0;
    uint8_t m_lcr = 0;
    uint8_t m_mcr = 0;
    uint8_t m_lsr_errors = 0; // OE (PE, FE, BI never happen on the virtual line)
    uint8_t m_msr_delta = 0;
    uint8_t m_external_modem = msr_cts | msr_dsr | msr_dcd;
    uint8_t m_scr = 0;
    bool m_thre_pending = false;
    bool m_line_high = false;
};

} // namespace vmgen::vm
