// Test-guest kit: starting application processors with INIT-SIPI-SIPI through the xAPIC.
#pragma once

#include <cstdint>

#include "kit/acpi.h"

namespace kit {

struct SmpResult {
    unsigned expected = 0; // processors in the MADT, the bootstrap processor included
    unsigned online = 0;   // processors running kit code, the bootstrap processor included
    uint32_t online_ids[madt_max_lapics] = {}; // APIC ids as each processor reported it (BSP first)
};

// Starts every enabled processor of the MADT other than the caller; each AP records its APIC id,
// counts itself online and halts forever. Waits until all are online or timeout_ms passes.
SmpResult start_aps(const Madt& madt, uint64_t timeout_ms);

} // namespace kit
