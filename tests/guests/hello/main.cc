// hello: the smallest guest. Prints its APIC id and passes.
#include "kit/kit.h"

extern "C" void guest_main(const kit::StartInfo*)
{
    kit::line("hello from cpu %u", kit::apic_id());
    kit::finish(true);
}
