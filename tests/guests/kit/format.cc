#include "kit/format.h"

#include <cstdint>

namespace kit {

namespace {

struct Out {
    char* buf;
    size_t size;
    size_t n = 0;
    void put(char c)
    {
        if (n + 1 < size)
            buf[n] = c;
        ++n;
    }
};

void put_unsigned(Out& o, uint64_t v, unsigned base, unsigned width, char pad)
{
    char digits[24];
    unsigned n = 0;
    do {
        unsigned d = static_cast<unsigned>(v % base);
        digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v != 0);
    while (n < width && n < sizeof digits)
        digits[n++] = pad;
    while (n > 0)
        o.put(digits[--n]);
}

} // namespace

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap)
{
    Out o{buf, size};
    for (; *fmt; ++fmt) {
        if (*fmt != '%') {
            o.put(*fmt);
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
            for (s = s ? s : "(null)"; *s; ++s)
                o.put(*s);
            break;
        }
        case 'c':
            o.put(static_cast<char>(va_arg(ap, int)));
            break;
        case 'd': {
            int64_t v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            uint64_t mag = static_cast<uint64_t>(v);
            if (v < 0) {
                o.put('-');
                mag = 0 - mag;
            }
            put_unsigned(o, mag, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_unsigned(o, v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            o.put('%');
            break;
        case '\0':
            --fmt; // the loop's ++fmt then stops at the NUL
            break;
        default:
            o.put('%');
            o.put(*fmt);
            break;
        }
    }
    if (size)
        buf[o.n < size ? o.n : size - 1] = '\0';
    return o.n < size ? o.n : (size ? size - 1 : 0);
}

size_t format(char* buf, size_t size, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

} // namespace kit
