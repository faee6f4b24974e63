#include "vmm/boot/kernel_loader.h"

#include "support/errno_error.h"
#include "support/log.h"
#include "support/unique_fd.h"
#include "vmm/boot/boot_placement.h"
#include "vmm/boot/elf_image.h"
#include "vmm/boot/linux_loader.h"
#include "vmm/boot/pvh_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vmgen::vmm {

KernelFormat detect_kernel_format(std::span<const uint8_t> kernel)
{
    if (is_bzimage(kernel))
        return KernelFormat::BzImage;
    if (is_elf(kernel))
        return KernelFormat::Elf;
    return KernelFormat::Unknown;
}

Result<std::vector<uint8_t>> read_boot_file(const std::string& path, uint64_t max_bytes, std::string_view what)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {} {}", what, path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return errno_failure(fmt::format("reading {} {}", what, path));
    if (!S_ISREG(st.st_mode))
        return fail("{} {} is not a regular file", what, path);
    auto size = static_cast<uint64_t>(st.st_size);
    if (size == 0)
        return fail("{} {} is empty", what, path);
    if (size > max_bytes) {
        return fail("{} {} is too big for the VM's RAM: the file has {} but the VM has only {}", what, path,
                    size_text(size), size_text(max_bytes));
    }
    std::vector<uint8_t> data(size);
    uint64_t done = 0;
    while (done < size) {
        ssize_t n = ::read(fd.get(), data.data() + done, size - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("reading {} {}", what, path));
        }
        if (n == 0)
            return fail("reading {} {}: file shrank to {} bytes while reading", what, path, done);
        done += static_cast<uint64_t>(n);
    }
    return data;
}

Result<EntryState> load_kernel_image(const vm::GuestMemory& memory, std::span<const uint8_t> kernel,
                                     std::span<const uint8_t> initrd, const BootSpec& spec)
{
    std::string name = display_name(spec.kernel_path, "kernel");
    if (kernel.empty())
        return fail("{} is empty", name);
    switch (detect_kernel_format(kernel)) {
    case KernelFormat::BzImage:
        return load_linux(memory, kernel, initrd, spec);
    case KernelFormat::Elf:
        return load_pvh(memory, kernel, initrd, spec);
    case KernelFormat::Unknown:
        break;
    }
    return fail("{} is neither a Linux bzImage nor an ELF kernel", name);
}

Result<EntryState> load_kernel(const vm::GuestMemory& memory, const BootSpec& spec)
{
    if (spec.kernel_path.empty())
        return fail("no kernel file given");
    uint64_t ram = memory.total_bytes();
    std::vector<uint8_t> kernel = TRY(read_boot_file(spec.kernel_path, ram, "kernel"));
    std::vector<uint8_t> initrd;
    if (!spec.initrd_path.empty())
        initrd = TRY(read_boot_file(spec.initrd_path, ram, "initrd"));
    auto state = TRY(load_kernel_image(memory, kernel, initrd, spec));
    log_info("boot", "loaded {} ({}){}{}, entry {:#x}", spec.kernel_path, size_text(kernel.size()),
             spec.initrd_path.empty() ? "" : ", initrd ", spec.initrd_path, state.rip);
    return state;
}

} // namespace vmgen::vmm
