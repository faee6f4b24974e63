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
};

} // namespace vmgen::vmm
