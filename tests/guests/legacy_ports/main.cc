// legacy_ports: probes the PC legacy devices and prints, per device,
//   vmgen-guest: port <name> <present|absent> (<detail>)
// and raw reads of ports that read as all ones when nothing decodes them:
//   vmgen-guest: read 0x<port> = 0x<value>
// The test decides what each generation must have; the guest passes unless a probe faults.
#include "kit/kit.h"

namespace {

using kit::inb;
using kit::inl;
using kit::outb;
using kit::outl;

void report(const char* name, bool present, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void report(const char* name, bool present, const char* fmt, ...)
{
    kit::printf("vmgen-guest: port %s %s (", name, present ? "present" : "absent");
    va_list ap;
    va_start(ap, fmt);
    kit::vprintf(fmt, ap);
    va_end(ap);
    kit::print(")\n");
}

// True if every port in [first, last] reads 0xff.
bool all_ones(uint16_t first, uint16_t last)
{
    for (unsigned p = first; p <= last; ++p)
        if (inb(static_cast<uint16_t>(p)) != 0xff)
            return false;
    return true;
}

bool scratch_ok(uint16_t port)
{
    outb(port, 0x5a);
    bool a = inb(port) == 0x5a;
    outb(port, 0xa5);
    bool b = inb(port) == 0xa5;
    return a && b;
}

void probe_pic()
{
    // ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (cascade wiring), ICW4 (8086 mode).
    outb(0x20, 0x11);
    outb(0x21, 0x20);
    outb(0x21, 0x04);
    outb(0x21, 0x01);
    outb(0xa0, 0x11);
    outb(0xa1, 0x28);
    outb(0xa1, 0x02);
    outb(0xa1, 0x01);
    // OCW1: the interrupt mask register reads back what was written.
    outb(0x21, 0x5a);
    outb(0xa1, 0xa5);
    uint8_t m1 = inb(0x21);
    uint8_t s1 = inb(0xa1);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    uint8_t m2 = inb(0x21);
    uint8_t s2 = inb(0xa1);
    bool present = m1 == 0x5a && s1 == 0xa5 && m2 == 0xff && s2 == 0xff;
    report("pic", present, "master_mask=0x%02x slave_mask=0x%02x", m1, s1);
}

uint16_t pit_latch_channel0()
{
    outb(0x43, 0x00); // counter latch, channel 0
    uint8_t lo = inb(0x40);
    uint8_t hi = inb(0x40);
    return static_cast<uint16_t>(hi << 8 | lo);
}

void probe_pit()
{
    outb(0x43, 0x34); // channel 0, lobyte/hibyte, mode 2 (rate generator), binary
    outb(0x40, 0xff);
    outb(0x40, 0xff);
    uint16_t a = pit_latch_channel0();
    kit::delay_us(100);
    uint16_t b = pit_latch_channel0();
    bool absent = a == 0xffff && b == 0xffff;
    report("pit", !absent, "count0=0x%04x count1=0x%04x changing=%s", a, b, a != b ? "yes" : "no");
}

void probe_i8042()
{
    uint8_t status = inb(0x64);
    report("i8042", status != 0xff, "status=0x%02x", status);
}

void probe_ide()
{
    bool primary_absent = all_ones(0x1f0, 0x1f7);
    bool secondary_absent = all_ones(0x170, 0x177);
    report("ide", !(primary_absent && secondary_absent), "primary_status=0x%02x secondary_status=0x%02x",
           inb(0x1f7), inb(0x177));
}

void probe_floppy()
{
    bool absent = all_ones(0x3f0, 0x3f7);
    report("floppy", !absent, "msr=0x%02x", inb(0x3f4));
}

void probe_vga()
{
    uint8_t misc = inb(0x3cc);
    uint8_t status = inb(0x3da);
    report("vga", !(misc == 0xff && status == 0xff), "misc=0x%02x input_status=0x%02x", misc, status);
}

void probe_pci()
{
    outl(0xcf8, 0x80000000);
    uint32_t back = inl(0xcf8);
    uint32_t id = inl(0xcfc);
    outl(0xcf8, 0);
    report("pci", back == 0x80000000, "cf8=0x%08x host_bridge_id=0x%08x", back, id);
}

void probe_dma()
{
    bool absent = all_ones(0x00, 0x0f) && all_ones(0xc0, 0xdf);
    report("dma", !absent, "status1=0x%02x status2=0x%02x", inb(0x08), inb(0xd0));
}

void probe_port80()
{
    outb(0x80, 0x5a);
    uint8_t v = inb(0x80);
    report("port80", v == 0x5a, "wrote=0x5a read=0x%02x", v);
}

void probe_port92()
{
    uint8_t v = inb(0x92);
    report("port92", v != 0xff, "value=0x%02x", v);
}

uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

bool valid_seconds(uint8_t v, bool bcd)
{
    if (bcd)
        return (v & 0x0f) <= 9 && (v >> 4) <= 5;
    return v < 60;
}

void probe_rtc()
{
    uint8_t status_b = cmos_read(0x0b);
    bool bcd = !(status_b & 0x04);
    uint8_t s1 = cmos_read(0x00);
    uint8_t s2 = cmos_read(0x00);
    bool present = status_b != 0xff && valid_seconds(s1, bcd) && valid_seconds(s2, bcd);
    report("rtc", present, "seconds=0x%02x,0x%02x status_b=0x%02x", s1, s2, status_b);
}

void probe_com(const char* name, uint16_t base)
{
    bool ok = scratch_ok(static_cast<uint16_t>(base + 7));
    report(name, ok, "lsr=0x%02x", inb(static_cast<uint16_t>(base + 5)));
}

void probe_speaker()
{
    uint8_t v = inb(0x61);
    report("speaker", v != 0xff, "value=0x%02x", v);
}

constexpr uint16_t raw_byte_ports[] = {
    0x00, 0x08, 0x0f, 0x20, 0x21, 0x40, 0x41, 0x42, 0x60, 0x61, 0x64, 0x80, 0x92, 0xa0, 0xa1, 0xc0, 0xd0, 0xde,
    0x170, 0x177, 0x1f0, 0x1f7, 0x2fd, 0x2ff, 0x3c0, 0x3cc, 0x3d4, 0x3da, 0x3f2, 0x3f4, 0x3f6, 0x3f7,
};

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    for (uint16_t port : raw_byte_ports)
        kit::line("read 0x%x = 0x%02x", port, inb(port));
    kit::line("read 0x%x = 0x%08x", 0xcfc, inl(0xcfc));

    probe_pic();
    probe_pit();
    probe_i8042();
    probe_ide();
    probe_floppy();
    probe_vga();
    probe_pci();
    probe_dma();
    probe_port80();
    probe_port92();
    probe_rtc();
    probe_com("com1", 0x3f8);
    probe_com("com2", 0x2f8);
    probe_speaker();
    kit::finish(true);
}
