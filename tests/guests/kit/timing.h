// Test-guest kit: TSC arithmetic for benchmark lines: a * b / c without overflow, "S.uuuuuu" seconds, rates.
#pragma once

#include <cstdint>

#include "kit/format.h"

namespace kit {

// a * b / c with a 128-bit intermediate (mul, div); all ones when the quotient does not fit in 64 bits.
inline uint64_t muldiv(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t hi, lo;
    asm("mulq %3" : "=a"(lo), "=d"(hi) : "a"(a), "rm"(b));
    if (hi >= c)
        return ~uint64_t{0};
    uint64_t q, r;
    asm("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(c));
    return q;
}

// "S.uuuuuu" (seconds, microseconds) for `ticks` at `hz`.
inline void seconds_text(uint64_t ticks, uint64_t hz, char out[32])
{
    uint64_t us = muldiv(ticks, 1000000, hz);
    format(out, 32, "%lu.%06lu", us / 1000000, us % 1000000);
}

// n per second over `ticks` at `hz` (0 for no ticks).
inline uint64_t per_second(uint64_t n, uint64_t ticks, uint64_t hz) { return ticks ? muldiv(n, hz, ticks) : 0; }

// Nanoseconds per one of `n` over `ticks` at `hz` (0 for n = 0).
inline uint64_t ns_per(uint64_t ticks, uint64_t n, uint64_t hz) { return n ? muldiv(ticks, 1000000000, hz) / n : 0; }

} // namespace kit
