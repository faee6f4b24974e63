// vCPU register state in hypervisor-neutral types (mirrors the x86 architectural state; hv/ converts to and
// from KVM's structures, so nothing above hv/ needs <linux/kvm.h>).
#pragma once

#include <cstdint>

namespace vmgen::hv {

struct Registers {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0;
    bool present = false;
    uint8_t dpl = 0;
    bool db = false;   // default operand size 32
    bool s = false;    // code/data (not system)
    bool l = false;    // 64-bit code
    bool g = false;    // 4 KiB granularity
    bool unusable = false;
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

struct SpecialRegisters {
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
    uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
    uint64_t efer = 0;
    uint64_t apic_base = 0;
};

} // namespace vmgen::hv
