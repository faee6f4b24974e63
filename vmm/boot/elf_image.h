// A validating reader for ELF32/ELF64 little-endian x86 executables, as needed to load a PVH kernel: the
// file header, the program headers and the notes in PT_NOTE segments. Every offset and size is checked
// against the file before use (the file is untrusted input).
#pragma once

#include "support/result.h"

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vmgen::vmm {

inline constexpr uint32_t elf_pt_load = 1;
inline constexpr uint32_t elf_pt_note = 4;
inline constexpr uint16_t elf_em_386 = 3;
inline constexpr uint16_t elf_em_x86_64 = 62;

struct ElfSegment {
    uint32_t type = 0;
    uint64_t offset = 0; // in the file; offset + filesz is within the file
    uint64_t paddr = 0;
    uint64_t filesz = 0; // <= memsz
    uint64_t memsz = 0;
    uint64_t align = 0;
};

struct ElfImage {
    bool is_64 = false;
    uint16_t machine = 0;
    uint64_t entry = 0;
    std::vector<ElfSegment> segments; // in program header order
};

struct ElfNote {
    std::string_view name; // without the terminating NUL
    uint32_t type = 0;
    std::span<const uint8_t> desc;
};

// True if `file` starts with the ELF magic.
[[nodiscard]] bool is_elf(std::span<const uint8_t> file);

// Parses and validates the ELF header and program headers; `name` prefixes the error messages.
[[nodiscard]] Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view name);

// The notes in a PT_NOTE segment of `file` (validated by parse_elf); the views point into `file`.
[[nodiscard]] Result<std::vector<ElfNote>> parse_elf_notes(std::span<const uint8_t> file, const ElfSegment& segment,
                                                           std::string_view name);

} // namespace vmgen::vmm
