#include "vmm/boot/kernel_loader.h"

#include "vmm/boot/layout.h"
#include "vmm/boot/synthetic_kernels.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace vmgen::vmm {
namespace {

using testing::make_bzimage;
using testing::make_pvh_elf;
using testing::mib;

bool mentions(const Error& e, std::string_view what) { return e.message().find(what) != std::string::npos; }

class KernelLoader : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto mem = vm::GuestMemory::create_x86(64 * mib);
        ASSERT_TRUE(mem);
        m_memory.emplace(std::move(*mem));
        char dir[] = "/tmp/vmgen_boot_test.XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_dir = dir;
    }
    void TearDown() override
    {
        for (const auto& f : m_files)
            ::unlink(f.c_str());
        ::rmdir(m_dir.c_str());
    }
    std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes)
    {
        std::string path = m_dir + "/" + name;
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        m_files.push_back(path);
        return path;
    }
    const vm::GuestMemory& memory() { return *m_memory; }

    std::optional<vm::GuestMemory> m_memory;
    std::string m_dir;
    std::vector<std::string> m_files;
};

TEST_F(KernelLoader, DetectsFormats)
{
    EXPECT_EQ(detect_kernel_format(make_bzimage()), KernelFormat::BzImage);
    EXPECT_EQ(detect_kernel_format(make_pvh_elf()), KernelFormat::Elf);
    std::vector<uint8_t> junk(4096, 0x90);
    EXPECT_EQ(detect_kernel_format(junk), KernelFormat::Unknown);
    EXPECT_EQ(detect_kernel_format({}), KernelFormat::Unknown);
}

TEST_F(KernelLoader, DispatchesInMemoryImages)
{
    BootSpec spec;
    auto linux_state = load_kernel_image(memory(), make_bzimage(), {}, spec);
    ASSERT_TRUE(linux_state) << linux_state.error().message();
    EXPECT_EQ(linux_state->mode, EntryState::Mode::Long64);
    auto pvh_state = load_kernel_image(memory(), make_pvh_elf(), {}, spec);
    ASSERT_TRUE(pvh_state) << pvh_state.error().message();
    EXPECT_EQ(pvh_state->mode, EntryState::Mode::Protected32);
}

TEST_F(KernelLoader, RejectsUnknownAndEmptyImages)
{
    BootSpec spec;
    spec.kernel_path = "/x/kernel.bin";
    std::vector<uint8_t> junk(4096, 0x90);
    auto r = load_kernel_image(memory(), junk, {}, spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "kernel /x/kernel.bin is neither a Linux bzImage nor an ELF kernel");
    r = load_kernel_image(memory(), {}, {}, spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "kernel /x/kernel.bin is empty");
    spec.kernel_path.clear();
    r = load_kernel_image(memory(), junk, {}, spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "kernel (in memory) is neither a Linux bzImage nor an ELF kernel");
}

TEST_F(KernelLoader, LoadsFiles)
{
    BootSpec spec;
    spec.kernel_path = write_file("bzImage", make_bzimage());
    std::vector<uint8_t> initrd(3000, 0x33);
    spec.initrd_path = write_file("initrd", initrd);
    spec.cmdline = "quiet";
    auto state = load_kernel(memory(), spec);
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(state->rip, 16 * mib + 0x200);
    std::vector<uint8_t> loaded(3000);
    ASSERT_TRUE(memory().read((64 * mib - 3000) & ~0xfffull, loaded));
    EXPECT_EQ(loaded, initrd);

    spec.kernel_path = write_file("vmlinux", make_pvh_elf());
    state = load_kernel(memory(), spec);
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(state->mode, EntryState::Mode::Protected32);
}

TEST_F(KernelLoader, ReportsMissingAndEmptyFiles)
{
    BootSpec spec;
    spec.kernel_path = m_dir + "/missing";
    auto r = load_kernel(memory(), spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), fmt::format("opening kernel {}/missing: No such file or directory", m_dir));

    spec.kernel_path = write_file("empty", {});
    r = load_kernel(memory(), spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), fmt::format("kernel {}/empty is empty", m_dir));

    spec.kernel_path = write_file("bzImage", make_bzimage());
    spec.initrd_path = m_dir + "/no-initrd";
    r = load_kernel(memory(), spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), fmt::format("opening initrd {}/no-initrd: No such file or directory", m_dir));

    spec.kernel_path = m_dir;
    r = load_kernel(memory(), spec);
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "is not a regular file")) << r.error().message();

    spec.kernel_path.clear();
    EXPECT_FALSE(load_kernel(memory(), spec));
}

TEST_F(KernelLoader, RejectsFilesBiggerThanRam)
{
    BootSpec spec;
    spec.kernel_path = write_file("bzImage", make_bzimage());
    spec.initrd_path = write_file("huge-initrd", {});
    ASSERT_EQ(::truncate(spec.initrd_path.c_str(), 65 * mib), 0); // sparse
    auto r = load_kernel(memory(), spec);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(),
              fmt::format("initrd {} is too big for the VM's RAM: the file has 65 MiB but the VM has only 64 MiB",
                          spec.initrd_path));
}

} // namespace
} // namespace vmgen::vmm
