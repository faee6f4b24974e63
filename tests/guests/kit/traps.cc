#include "kit/traps.h"

#include "kit/acpi.h"
#include "kit/cpu.h"
#include "kit/layout.h"
#include "kit/serial.h"

namespace {

struct [[gnu::packed]] Tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

// The TSS with an all-permitting I/O bitmap: ring-3 port I/O is allowed by IOPL 3 already, the bitmap
// makes it work on hypervisors that only look at the bitmap.
struct [[gnu::packed]] TssWithIoBitmap {
    Tss tss;
    uint8_t io_bitmap[8192];
    uint8_t terminator; // the processor may read one byte past the bitmap: all ones
};

struct IdtEntry {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
};
static_assert(sizeof(IdtEntry) == 16);

struct [[gnu::packed]] DescriptorPointer {
    uint16_t limit;
    uint64_t base;
};

alignas(16) IdtEntry idt[256];
kit::InterruptHandler interrupt_handlers[256];

void set_gate(unsigned vector, uint64_t handler, unsigned dpl)
{
    IdtEntry& e = idt[vector];
    e.offset_low = static_cast<uint16_t>(handler);
    e.selector = KIT_KERNEL_CS;
    e.ist = 0;
    e.type_attr = static_cast<uint8_t>(0x8e | (dpl << 5)); // present, 64-bit interrupt gate
    e.offset_mid = static_cast<uint16_t>(handler >> 16);
    e.offset_high = static_cast<uint32_t>(handler >> 32);
    e.reserved = 0;
}

} // namespace

extern "C" {
alignas(16) TssWithIoBitmap kit_tss = {{}, {}, 0xff};
extern uint64_t kit_gdt[];
extern const uint64_t kit_exception_stubs[32];
extern const uint8_t kit_interrupt_stubs[]; // one KIT_INTERRUPT_STUB_SIZE stub per vector from 32
void kit_ring3_return();
void kit_run_in_ring3(void (*fn)(void*), void* arg);

// Called by the exception stubs with frame = {vector, error code, rip, cs, rflags, rsp, ss}.
[[noreturn]] void kit_exception(const uint64_t* frame)
{
    kit::line("exception vector=%lu error=0x%lx rip=0x%lx cs=0x%lx rsp=0x%lx cpu=%u", frame[0], frame[1],
              frame[2], frame[3], frame[5], kit::apic_id());
    if (frame[0] == 14) {
        uint64_t cr2;
        asm volatile("mov %%cr2, %0" : "=r"(cr2));
        kit::line("page fault address=0x%lx", cr2);
    }
    kit::line("result FAIL exception %lu at 0x%lx", frame[0], frame[2]);
    kit::power_off();
}

kit::Ring3GateHandler kit_ring3_gate_handler = nullptr;
uint64_t kit_ring3_gate_count = 0;

// Called by the ring-3 gate (entry.S, ring3_gate) in ring 0 with the caller's arguments.
uint64_t kit_ring3_gate_dispatch(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    ++kit_ring3_gate_count;
    return kit_ring3_gate_handler ? kit_ring3_gate_handler(nr, a, b, c) : ~uint64_t{0};
}

// Called by the interrupt stubs (entry.S) with the vector, on the interrupted stack, caller-saved
// registers preserved by the stub.
void kit_interrupt(uint64_t vector)
{
    kit::InterruptHandler h = __atomic_load_n(&interrupt_handlers[vector & 0xff], __ATOMIC_ACQUIRE);
    if (h) {
        h(static_cast<unsigned>(vector));
        return;
    }
    kit::line("result FAIL interrupt vector %lu without a handler", vector);
    kit::power_off();
}
}

namespace kit {

void traps_load_idt()
{
    DescriptorPointer p{sizeof idt - 1, reinterpret_cast<uint64_t>(&idt[0])};
    asm volatile("lidt %0" : : "m"(p));
}

void traps_init()
{
    for (unsigned v = 0; v < 32; ++v)
        set_gate(v, kit_exception_stubs[v], 0);
    set_gate(KIT_RING3_RETURN_VECTOR, reinterpret_cast<uint64_t>(&kit_ring3_return), 3);
    traps_load_idt();

    kit_tss.tss.iomap_base = sizeof(Tss);
    uint64_t base = reinterpret_cast<uint64_t>(&kit_tss);
    uint64_t limit = sizeof(TssWithIoBitmap) - 1;
    kit_gdt[KIT_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (uint64_t{0x89} << 40) |
                           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    kit_gdt[KIT_TSS / 8 + 1] = base >> 32;
    asm volatile("ltr %w0" : : "r"(KIT_TSS));
}

bool set_interrupt_handler(unsigned vector, InterruptHandler handler)
{
    if (vector < first_interrupt_vector || vector > 255 || vector == KIT_RING3_RETURN_VECTOR)
        return false;
    __atomic_store_n(&interrupt_handlers[vector], handler, __ATOMIC_RELEASE);
    if (handler) {
        set_gate(vector,
                 reinterpret_cast<uint64_t>(kit_interrupt_stubs) +
                     (vector - first_interrupt_vector) * KIT_INTERRUPT_STUB_SIZE,
                 0);
    } else {
        idt[vector] = IdtEntry{};
    }
    return true;
}

void run_in_ring3(void (*fn)(void*), void* arg) { kit_run_in_ring3(fn, arg); }

void set_ring3_gate(Ring3GateHandler handler) { kit_ring3_gate_handler = handler; }
uint64_t ring3_gate_calls() { return kit_ring3_gate_count; }

} // namespace kit
