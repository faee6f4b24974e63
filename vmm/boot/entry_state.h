// The vCPU state in which a boot protocol hands control to the kernel. Produced by the loaders
// (vmm/boot), applied to the boot vCPU by the machine (hv::Vcpu). Neutral: no KVM types.
#pragma once

#include <cstdint>

namespace vmgen::vmm {

// A flat segment as loaded into a segment register (base, limit in bytes, access type, flags).
struct FlatSegment {
    uint16_t selector = 0;
    uint64_t base = 0;
    uint32_t limit = 0xffffffff;
    uint8_t type = 0;   // descriptor type field: 0xb code (execute/read, accessed), 0x3 data (read/write, accessed)
    bool code = false;  // S=1 code vs data, used with type
    bool long_mode = false; // L bit (64-bit code)
    bool default_32 = true; // D/B bit
};

struct EntryState {
    enum class Mode {
        Protected32, // PVH: 32-bit protected mode, paging off, flat segments, EBX = start info
        Long64,      // Linux 64-bit boot protocol: long mode, identity-mapped page tables, RSI = boot_params
    };
    Mode mode = Mode::Protected32;
    uint64_t rip = 0;
    uint64_t rsi = 0;
    uint64_t rbx = 0;
    uint64_t rsp = 0;
    uint64_t cr0 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t efer = 0;
    uint64_t gdt_base = 0;
    uint16_t gdt_limit = 0;
    FlatSegment code;
    FlatSegment data; // loaded into DS, ES, SS, FS, GS
};

} // namespace vmgen::vmm
