// mkbzimage: wraps a bzImage test guest's ELF (linked with kit/linker_bzimage.ld) into a Linux bzImage
// file: setup sectors with the setup header, then the protected-mode image. Built for the host.
//
//   mkbzimage IN.elf OUT.bzImage
//
// Layout (Linux Documentation/x86/boot.rst, "The Real-Mode Kernel Header" and "Details of Header
// Fields"): the setup part is (setup_sects + 1) sectors of 512 bytes with the header at 0x1f1, the
// 0xAA55 boot flag at 0x1fe, a short jump at 0x200 over the header and "HdrS" at 0x202; the
// protected-mode part follows and is loaded at the kernel's load address, its 64-bit entry at + 0x200.
// The ELF's lowest PT_LOAD address becomes pref_address (relocatable_kernel = 1, 2 MiB alignment) and
// its memory footprint, .stack included, init_size.
#include "protocols/boot/linux_boot.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <elf.h>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lb = vmgen::protocols::linux_boot;

namespace {

constexpr uint8_t setup_sects = 1;
constexpr uint16_t protocol_version = 0x020f;
constexpr uint32_t kernel_alignment = 0x200000;
constexpr uint8_t min_alignment = 21; // log2(kernel_alignment)
constexpr uint32_t cmdline_size = 2047;
constexpr uint32_t initrd_addr_max = 0x7fffffff;
constexpr uint64_t version_string_offset = 0x300; // in the setup part; kernel_version is relative to 0x200
constexpr char version_string[] = "vmgen test guest";
constexpr uint64_t realmode_entry = 0x26c; // where the jump at 0x200 lands: just past the header

int die(const std::string& message)
{
    std::fprintf(stderr, "mkbzimage: %s\n", message.c_str());
    return 1;
}

template <typename T>
bool read_obj(const std::vector<uint8_t>& file, uint64_t offset, T& out)
{
    if (offset > file.size() || sizeof(T) > file.size() - offset)
        return false;
    std::memcpy(&out, file.data() + offset, sizeof(T));
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
        return die("usage: mkbzimage IN.elf OUT.bzImage");
    std::ifstream in(argv[1], std::ios::binary);
    if (!in)
        return die(std::string("cannot open ") + argv[1]);
    std::vector<uint8_t> elf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

    Elf64_Ehdr eh;
    if (!read_obj(elf, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        return die(std::string(argv[1]) + " is not an x86-64 ELF64 file");

    // The protected-mode image: every PT_LOAD at its physical address, relative to the lowest one.
    uint64_t low = UINT64_MAX;
    uint64_t file_end = 0;
    uint64_t mem_end = 0;
    std::vector<Elf64_Phdr> loads;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        if (!read_obj(elf, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr), ph))
            return die("truncated program headers");
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
            continue;
        if (ph.p_filesz > ph.p_memsz || ph.p_offset > elf.size() || ph.p_filesz > elf.size() - ph.p_offset)
            return die("bad PT_LOAD segment");
        loads.push_back(ph);
        low = std::min<uint64_t>(low, ph.p_paddr);
        file_end = std::max<uint64_t>(file_end, ph.p_paddr + ph.p_filesz);
        mem_end = std::max<uint64_t>(mem_end, ph.p_paddr + ph.p_memsz);
    }
    if (loads.empty())
        return die("no PT_LOAD segment");
    if (low % kernel_alignment != 0 || low < 0x100000 || mem_end > 0xffffffff)
        return die("the image must be linked at a 2 MiB aligned address at or above 1 MiB, below 4 GiB");
    if (eh.e_entry != low + lb::entry64_offset)
        return die("the ELF entry must be the 64-bit entry at the load address + 0x200");

    std::vector<uint8_t> kernel(file_end - low, 0);
    for (const auto& ph : loads)
        std::memcpy(kernel.data() + (ph.p_paddr - low), elf.data() + ph.p_offset, ph.p_filesz);
    kernel.resize((kernel.size() + 15) & ~uint64_t{15}); // whole paragraphs (syssize)

    // The setup part: boot sector and one setup sector; the 16-bit entry halts.
    std::vector<uint8_t> setup((setup_sects + 1) * lb::sector_size, 0);
    lb::SetupHeader hdr;
    std::memset(&hdr, 0, sizeof(hdr));
    hdr.setup_sects = setup_sects;
    hdr.syssize = static_cast<uint32_t>(kernel.size() / 16);
    hdr.vid_mode = 0xffff; // "normal"
    hdr.boot_flag = lb::boot_flag_magic;
    hdr.jump = static_cast<uint16_t>(0xeb | (realmode_entry - (lb::jump_offset + 2)) << 8); // jmp short
    hdr.header = lb::header_magic;
    hdr.version = protocol_version;
    hdr.kernel_version = static_cast<uint16_t>(version_string_offset - lb::jump_offset);
    hdr.loadflags = lb::loadflag_loaded_high;
    hdr.code32_start = static_cast<uint32_t>(low);
    hdr.initrd_addr_max = initrd_addr_max;
    hdr.kernel_alignment = kernel_alignment;
    hdr.relocatable_kernel = 1;
    hdr.min_alignment = min_alignment;
    hdr.xloadflags = lb::xlf_kernel_64;
    hdr.cmdline_size = cmdline_size;
    hdr.pref_address = low;
    hdr.init_size = static_cast<uint32_t>((mem_end - low + 0xfff) & ~uint64_t{0xfff});
    static_assert(lb::setup_header_offset + sizeof(lb::SetupHeader) == realmode_entry);
    std::memcpy(setup.data() + lb::setup_header_offset, &hdr, sizeof(hdr));
    const uint8_t halt16[] = {0xfa, 0xf4, 0xeb, 0xfd}; // cli; 1: hlt; jmp 1b
    std::memcpy(setup.data() + realmode_entry, halt16, sizeof(halt16));
    static_assert(version_string_offset + sizeof(version_string) <= (setup_sects + 1) * lb::sector_size);
    std::memcpy(setup.data() + version_string_offset, version_string, sizeof(version_string));

    std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(setup.data()), static_cast<std::streamsize>(setup.size()));
    out.write(reinterpret_cast<const char*>(kernel.data()), static_cast<std::streamsize>(kernel.size()));
    out.close();
    if (!out)
        return die(std::string("cannot write ") + argv[2]);
    return 0;
}
