#include "kit/serial.h"

#include "kit/cpu.h"
#include "kit/format.h"

namespace kit {

namespace {

// Bytes written since the transmitter was last seen empty: with the 16-byte FIFO enabled we only poll
// the line status register once per 16 bytes (each port access is a VM exit).
unsigned unchecked_bytes = 16;

void wait_transmitter_empty()
{
    for (unsigned i = 0; i < 100000; ++i) {
        uint8_t lsr = inb(com1 + 5);
        if (lsr == 0xff || (lsr & 0x20))
            return; // 0xff: nothing there, do not wait for it
        pause();
    }
}

} // namespace

void serial_init()
{
    outb(com1 + 1, 0x00); // IER: no interrupts
    outb(com1 + 3, 0x80); // LCR: DLAB
    outb(com1 + 0, 0x01); // divisor 1: 115200 baud
    outb(com1 + 1, 0x00);
    outb(com1 + 3, 0x03); // LCR: 8N1
    outb(com1 + 2, 0xc7); // FCR: enable and clear FIFOs
    outb(com1 + 4, 0x03); // MCR: DTR, RTS
    unchecked_bytes = 16;
}

void putc(char c)
{
    if (unchecked_bytes >= 16) {
        wait_transmitter_empty();
        unchecked_bytes = 0;
    }
    outb(com1, static_cast<uint8_t>(c));
    ++unchecked_bytes;
}

void print(const char* s)
{
    while (*s)
        putc(*s++);
}

void vprintf(const char* fmt, va_list ap)
{
    // One formatter for the kit (format.cc); a line longer than the buffer is cut, never overrun.
    char buffer[1024];
    vformat(buffer, sizeof buffer, fmt, ap);
    print(buffer);
}

void printf(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

void line(const char* fmt, ...)
{
    print("vmgen-guest: ");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putc('\n');
}

} // namespace kit
