// LineInterrupt: a device's interrupt output. The device only raises or lowers its line; which
// controller and pin it reaches (PIC/IOAPIC via KVM, or the VMM's own I/O APIC) is the machine's business.
#pragma once

#include <cstdint>

namespace vmgen::vm {

class LineInterrupt {
public:
    virtual ~LineInterrupt() = default;
    virtual void set_level(bool high) = 0;
    // An edge: raise then lower (ISA devices on edge-triggered pins).
    void pulse()
    {
        set_level(true);
        set_level(false);
    }
};

// MsiTarget: delivers a message-signalled interrupt (address 0xFEExxxxx, data = vector and mode) to the
// local APICs. Implemented by the machine over KVM_SIGNAL_MSI.
class MsiTarget {
public:
    virtual ~MsiTarget() = default;
    virtual void signal_msi(uint64_t address, uint32_t data) = 0;
};

} // namespace vmgen::vm
