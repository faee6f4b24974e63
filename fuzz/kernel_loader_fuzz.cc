// libFuzzer target: direct kernel boot loaders (bzImage and PVH ELF) on hostile kernel and initrd bytes.
//
// Input: [u16 initrd length][u8 command line length / 37][kernel bytes ... initrd bytes]. The initrd is the
// last `initrd length` bytes (capped to what is there). Guest RAM is 64 MiB (MAP_NORESERVE: cheap); a crash,
// sanitizer report or write outside guest RAM is a bug, an error Result is the expected answer to junk.
#include "vm/memory/guest_memory.h"
#include "vmm/boot/kernel_loader.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

namespace {

const vmgen::vm::GuestMemory& guest_memory()
{
    static vmgen::vm::GuestMemory* memory = [] {
        auto created = vmgen::vm::GuestMemory::create_x86(64ull << 20);
        if (!created)
            std::abort();
        return new vmgen::vm::GuestMemory(std::move(*created));
    }();
    return *memory;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    constexpr size_t prefix = 3;
    if (size < prefix)
        return 0;
    std::span<const uint8_t> input(data, size);
    size_t initrd_size = static_cast<size_t>(input[0]) | static_cast<size_t>(input[1]) << 8;
    std::string cmdline(static_cast<size_t>(input[2]) * 37, 'x');
    std::span<const uint8_t> rest = input.subspan(prefix);
    if (initrd_size > rest.size())
        initrd_size = rest.size();
    std::span<const uint8_t> kernel = rest.first(rest.size() - initrd_size);
    std::span<const uint8_t> initrd = rest.last(initrd_size);

    vmgen::vmm::BootSpec spec;
    spec.kernel_path = "fuzz-kernel";
    spec.initrd_path = "fuzz-initrd";
    spec.cmdline = std::move(cmdline);
    spec.rsdp_gpa = 0xe0000;
    auto state = vmgen::vmm::load_kernel_image(guest_memory(), kernel, initrd, spec);
    if (state) {
        // A successful load must describe an entry the loaders could have produced.
        if (state->mode == vmgen::vmm::EntryState::Mode::Long64 && state->rsi != 0x7000)
            std::abort();
        if (state->mode == vmgen::vmm::EntryState::Mode::Protected32 && state->rip > UINT32_MAX)
            std::abort();
    } else if (state.error().message().empty()) {
        std::abort();
    }
    return 0;
}
