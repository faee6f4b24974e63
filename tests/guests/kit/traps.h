// Test-guest kit: IDT (exceptions reported on serial, then power off), TSS and the ring-3 runner.
#pragma once

#include <cstdint>

namespace kit {

// Loads the IDT (exceptions 0-31 and the ring-3 return vector) and the TSS. Done by kit_entry.
void traps_init();
// Loads the kit IDT on an application processor.
void traps_load_idt();

// Runs fn(arg) in ring 3 with RFLAGS.IOPL = 3 (port I/O allowed) on a separate user stack; returns when
// fn returns. Interrupts stay disabled. Not reentrant, bootstrap processor only.
void run_in_ring3(void (*fn)(void*), void* arg);

} // namespace kit
