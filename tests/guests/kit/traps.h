// Test-guest kit: IDT (exceptions reported on serial, then power off), TSS and the ring-3 runner.
#pragma once

#include <cstdint>

namespace kit {

// Loads the IDT (exceptions 0-31 and the ring-3 return vector) and the TSS. Done by kit_entry.
void traps_init();
// Loads the kit IDT on an application processor.
void traps_load_idt();

// Device and inter-processor interrupts: vectors 32-255 (except the ring-3 return vector) can get a C++
// handler, called with the vector through an interrupt gate (interrupts stay off while it runs). The
// handler acknowledges its device and writes the local APIC's EOI itself (kit/apic.h). A vector without
// a handler has no gate: its delivery raises #NP, which the kit reports as an exception.
using InterruptHandler = void (*)(unsigned vector);
inline constexpr unsigned first_interrupt_vector = 32;
// Installs (or, with nullptr, removes) the handler of `vector`; returns false for a vector it cannot use.
// The IDT is shared by every processor.
bool set_interrupt_handler(unsigned vector, InterruptHandler handler);

// Runs fn(arg) in ring 3 with RFLAGS.IOPL = 3 (port I/O allowed) on a separate user stack; returns when
// fn returns. Interrupts stay disabled. Not reentrant, bootstrap processor only.
void run_in_ring3(void (*fn)(void*), void* arg);

// Ring-3 -> ring-0 gate (a "system call"): ring3_call(nr, a, b, c), made from ring 3 (or ring 0), traps to
// ring 0 through a `ud2` at a fixed address that the #UD handler recognises (this works where the hypervisor
// turns a ring-3 `int n` into #UD, too), runs the handler set with set_ring3_gate(nr, a, b, c) there with
// interrupts off, and returns its result in ring 3. Without a handler it returns ~0. Bootstrap processor only.
using Ring3GateHandler = uint64_t (*)(uint64_t nr, uint64_t a, uint64_t b, uint64_t c);
void set_ring3_gate(Ring3GateHandler handler);
uint64_t ring3_gate_calls(); // gate entries so far
} // namespace kit

extern "C" uint64_t kit_ring3_call(uint64_t nr, uint64_t a, uint64_t b, uint64_t c);

namespace kit {
inline uint64_t ring3_call(uint64_t nr, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0)
{
    return kit_ring3_call(nr, a, b, c);
}

} // namespace kit
