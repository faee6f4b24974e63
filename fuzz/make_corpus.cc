// Writes the seed corpus for kernel_loader_fuzz: small valid bzImages and PVH ELF kernels in the fuzz input
// format ([u16 initrd length][u8 cmdline length / 37][kernel][initrd]). Each seed is checked to load, so the
// fuzzer starts from inputs that reach the end of the loaders.
//   make_corpus <directory>
#include "vm/memory/guest_memory.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/boot/synthetic_kernels.h"

#include <cstdio>
#include <string>
#include <vector>

namespace {

namespace t = vmgen::vmm::testing;

bool write_seed(const std::string& dir, const char* name, const std::vector<uint8_t>& kernel, uint16_t initrd_size,
                uint8_t cmdline_units)
{
    std::vector<uint8_t> initrd;
    for (uint16_t i = 0; i < initrd_size; ++i)
        initrd.push_back(static_cast<uint8_t>(i));
    auto memory = vmgen::vm::GuestMemory::create_x86(64ull << 20);
    vmgen::vmm::BootSpec spec;
    spec.kernel_path = name;
    spec.cmdline = std::string(size_t{cmdline_units} * 37, 'x');
    auto loaded = memory ? vmgen::vmm::load_kernel_image(*memory, kernel, initrd, spec)
                         : vmgen::Result<vmgen::vmm::EntryState>(vmgen::fail("no guest memory"));
    if (!loaded) {
        std::fprintf(stderr, "seed %s does not load: %s\n", name, loaded.error().message().c_str());
        return false;
    }
    std::vector<uint8_t> bytes = {static_cast<uint8_t>(initrd_size & 0xff), static_cast<uint8_t>(initrd_size >> 8),
                                  cmdline_units};
    bytes.insert(bytes.end(), kernel.begin(), kernel.end());
    bytes.insert(bytes.end(), initrd.begin(), initrd.end());
    std::string path = dir + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr)
        return false;
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return std::fclose(f) == 0 && ok;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    t::BzImageOptions bz;
    bz.payload_size = 1024;
    bz.init_size = 1 << 20;
    t::BzImageOptions bz_fixed = bz;
    bz_fixed.relocatable = 0;
    t::PvhElfOptions elf64;
    elf64.filesz = 256;
    elf64.memsz = 4096;
    t::PvhElfOptions elf32 = elf64;
    elf32.is_64 = false;
    t::PvhElfOptions elf64_wide = elf64;
    elf64_wide.entry_size = 8;
    bool ok = write_seed(dir, "bzimage", t::make_bzimage(bz), 0, 1) &&
              write_seed(dir, "bzimage-initrd", t::make_bzimage(bz), 512, 2) &&
              write_seed(dir, "bzimage-fixed", t::make_bzimage(bz_fixed), 64, 0) &&
              write_seed(dir, "pvh-elf64", t::make_pvh_elf(elf64), 0, 1) &&
              write_seed(dir, "pvh-elf64-initrd", t::make_pvh_elf(elf64_wide), 300, 3) &&
              write_seed(dir, "pvh-elf32", t::make_pvh_elf(elf32), 16, 0);
    if (!ok) {
        std::perror("writing the corpus");
        return 1;
    }
    return 0;
}
