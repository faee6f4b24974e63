// reset: resets the machine through the FADT reset register.
#include "kit/kit.h"

extern "C" void guest_main(const kit::StartInfo*)
{
    kit::Fadt f = kit::parse_fadt(kit::acpi().fadt);
    kit::line("resetting via reset_reg=%u:0x%lx value=0x%x", f.reset_space, f.reset_address, f.reset_value);
    kit::reset();
    kit::finish(false, "reset register write returned");
}
