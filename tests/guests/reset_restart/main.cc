// reset_restart: a guest reset with the restart action. CMOS RAM survives the reset (as on a PC): the
// first boot writes a marker there and resets through the FADT reset register; the second boot finds the
// marker and passes.
#include "kit/kit.h"

namespace {

constexpr uint16_t cmos_index = 0x70;
constexpr uint16_t cmos_data = 0x71;
constexpr uint8_t marker_index = 0x40; // general-purpose CMOS RAM, unused by vmgen's RTC
constexpr uint8_t marker = 0xa5;

uint8_t cmos_read(uint8_t index)
{
    kit::outb(cmos_index, index);
    return kit::inb(cmos_data);
}

void cmos_write(uint8_t index, uint8_t value)
{
    kit::outb(cmos_index, index);
    kit::outb(cmos_data, value);
}

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    uint8_t value = cmos_read(marker_index);
    if (value != marker) {
        cmos_write(marker_index, marker);
        if (cmos_read(marker_index) != marker)
            kit::finish(false, "CMOS RAM write did not stick");
        kit::line("first boot, resetting");
        kit::reset();
        kit::finish(false, "reset register write returned");
    }
    kit::line("second boot after reset");
    cmos_write(marker_index, 0);
    kit::finish(true);
}
