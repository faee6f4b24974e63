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

} // namespace kit
