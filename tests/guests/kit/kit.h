// Test-guest kit: everything a test guest includes. A guest defines guest_main(); the kit's entry
// (entry.S, kit_entry) has already set up long mode, COM1, the IDT and the TSS when it is called.
//
//   extern "C" void guest_main(const kit::StartInfo*)
//   {
//       kit::line("hello from cpu %u", kit::apic_id());
//       kit::finish(true);
//   }
//
// Output protocol: every line starts with "vmgen-guest: "; a guest ends with "vmgen-guest: result PASS"
// or "vmgen-guest: result FAIL <reason>" and then powers off through ACPI.
#pragma once

#include "kit/acpi.h"
#include "kit/cpu.h"
#include "kit/serial.h"
#include "kit/smp.h"
#include "kit/traps.h"
#include "protocols/boot/pvh.h"

namespace kit {

using StartInfo = vmgen::protocols::pvh::StartInfo;

// Prints the result line and powers off (never returns).
[[noreturn]] void finish(bool pass, const char* reason = nullptr);

} // namespace kit

extern "C" void guest_main(const kit::StartInfo* start_info);
