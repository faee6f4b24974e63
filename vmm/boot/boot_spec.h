// What to boot directly: a kernel file, an optional initrd, the command line and the ACPI RSDP address.
#pragma once

#include <cstdint>
#include <string>

namespace vmgen::vmm {

struct BootSpec {
    std::string kernel_path;
    std::string initrd_path; // empty: no initrd
    std::string cmdline;
    uint64_t rsdp_gpa = 0;   // 0: none (the kernel searches the BIOS area)
    // The guest RAM is freshly mapped and still all zero: loaders skip clearing memory (an ELF segment's
    // bss), which would otherwise allocate host pages the guest may never touch.
    bool ram_is_zero = false;
};

} // namespace vmgen::vmm
