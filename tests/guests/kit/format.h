// Test-guest kit: printf-style formatting into a buffer (the subset serial.h's printf knows:
// %s %c %d %u %x, 'l', '0' flag and width, %%). Always NUL terminates; truncates silently.
#pragma once

#include <cstdarg>
#include <cstddef>

namespace kit {

// Returns the length written (without the NUL).
size_t vformat(char* buf, size_t size, const char* fmt, va_list ap);
size_t format(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

} // namespace kit
