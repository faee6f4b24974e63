#include "kit/serial.h"

#include "kit/cpu.h"

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

void put_unsigned(uint64_t v, unsigned base, unsigned width, char pad)
{
    char buf[24];
    unsigned n = 0;
    do {
        unsigned d = static_cast<unsigned>(v % base);
        buf[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v != 0);
    while (n < width && n < sizeof buf)
        buf[n++] = pad;
    while (n > 0)
        putc(buf[--n]);
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
    for (; *fmt; ++fmt) {
        if (*fmt != '%') {
            putc(*fmt);
            continue;
        }
        ++fmt;
        char pad = ' ';
        if (*fmt == '0') {
            pad = '0';
            ++fmt;
        }
        unsigned width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + static_cast<unsigned>(*fmt++ - '0');
        bool is_long = false;
        while (*fmt == 'l') {
            is_long = true;
            ++fmt;
        }
        switch (*fmt) {
        case 's': {
            const char* s = va_arg(ap, const char*);
            print(s ? s : "(null)");
            break;
        }
        case 'c':
            putc(static_cast<char>(va_arg(ap, int)));
            break;
        case 'd': {
            int64_t v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            uint64_t mag = static_cast<uint64_t>(v);
            if (v < 0) {
                putc('-');
                mag = 0 - mag;
            }
            put_unsigned(mag, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_unsigned(v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            putc('%');
            break;
        case '\0':
            return;
        default:
            putc('%');
            putc(*fmt);
            break;
        }
    }
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
