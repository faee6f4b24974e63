// triple_fault: an exception with an empty IDT: #UD -> #GP -> double fault -> triple fault (shutdown).
// ud2 rather than int3: this development host's software KVM never delivers a software interrupt
// (`int n`) through an empty IDT (the vCPU spins on the instruction), while a fault is delivered.
#include "kit/kit.h"

extern "C" void guest_main(const kit::StartInfo*)
{
    kit::line("triple fault now");
    struct [[gnu::packed]] {
        uint16_t limit;
        uint64_t base;
    } empty_idt{0, 0};
    asm volatile("lidt %0; ud2" : : "m"(empty_idt));
    kit::finish(false, "ud2 with an empty IDT returned");
}
