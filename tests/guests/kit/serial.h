// Test-guest kit: polled COM1 output and a tiny printf.
// Every line a guest reports starts with "vmgen-guest: " (see line()).
#pragma once

#include <cstdarg>
#include <cstdint>

namespace kit {

inline constexpr uint16_t com1 = 0x3f8;

void serial_init();
void putc(char c);
void print(const char* s);
// printf subset: %s %c %d %u %x %ld %lu %lx %%, with optional '0' flag and width (%08x).
void printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void vprintf(const char* fmt, va_list ap);
// One protocol line: "vmgen-guest: " + formatted text + "\n".
void line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace kit
