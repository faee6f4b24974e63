// ring3_loop: a long computation in ring 3 that ends with port I/O (IOPL 3), then back to ring 0.
#include "kit/kit.h"

namespace {

constexpr uint64_t iterations = 100000000;

struct Work {
    uint64_t done = 0;
    bool ok = false;
};

void spin(void* arg)
{
    auto* w = static_cast<Work*>(arg);
    uint64_t i = 0;
    for (; i < iterations; ++i)
        asm volatile("" : "+r"(i));
    kit::outb(0x80, 0x42); // faults (#GP) unless IOPL = 3
    uint16_t cs;
    asm volatile("mov %%cs, %0" : "=r"(cs));
    w->done = i;
    w->ok = (cs & 3) == 3;
}

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    Work w;
    kit::run_in_ring3(spin, &w);
    if (!w.ok)
        kit::finish(false, "did not run in ring 3");
    kit::line("ring3 iterations=%lu ok", w.done);
    kit::finish(w.done == iterations, "wrong iteration count");
}
