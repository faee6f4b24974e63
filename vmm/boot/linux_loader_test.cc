#include "vmm/boot/linux_loader.h"

#include "protocols/boot/linux_boot.h"
#include "vmm/boot/cpu_setup.h"
#include "vmm/boot/layout.h"
#include "vmm/boot/synthetic_kernels.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vmgen::vmm {
namespace {

namespace lb = protocols::linux_boot;
using testing::BzImageOptions;
using testing::make_bzimage;
using testing::mib;
using testing::payload_byte;

constexpr uint64_t setup_bytes = 5 * 512; // setup_sects 4 + boot sector

bool mentions(const Error& e, std::string_view what) { return e.message().find(what) != std::string::npos; }

class LinuxLoader : public ::testing::Test {
protected:
    void SetUp() override { use_ram(64 * mib); }
    void use_ram(uint64_t bytes)
    {
        auto mem = vm::GuestMemory::create_x86(bytes);
        ASSERT_TRUE(mem);
        m_memory.emplace(std::move(*mem));
    }
    const vm::GuestMemory& memory() { return *m_memory; }
    lb::BootParams boot_params() { return *memory().read_obj<lb::BootParams>(layout::boot_params); }
    std::vector<uint8_t> read(uint64_t gpa, uint64_t len)
    {
        std::vector<uint8_t> out(len);
        EXPECT_TRUE(memory().read(gpa, out));
        return out;
    }
    void expect_payload_at(uint64_t gpa, uint64_t len)
    {
        auto bytes = read(gpa, len);
        for (uint64_t i = 0; i < len; ++i) {
            ASSERT_EQ(bytes[i], payload_byte(i)) << "at " << i;
        }
    }
    BootSpec spec(std::string cmdline = "console=ttyS0")
    {
        BootSpec s;
        s.kernel_path = "/images/bzImage";
        s.initrd_path = "/images/initrd";
        s.cmdline = std::move(cmdline);
        s.rsdp_gpa = layout::acpi_tables;
        return s;
    }

    std::optional<vm::GuestMemory> m_memory;
};

TEST_F(LinuxLoader, DetectsTheSignatures)
{
    auto image = make_bzimage();
    EXPECT_TRUE(is_bzimage(image));
    image[0x1fe] = 0;
    EXPECT_FALSE(is_bzimage(image));
    image = make_bzimage();
    image[0x202] = 'X';
    EXPECT_FALSE(is_bzimage(image));
    EXPECT_FALSE(is_bzimage(std::span(image).first(0x205)));
}

TEST_F(LinuxLoader, LoadsAtThePreferredAddress)
{
    auto image = make_bzimage();
    std::vector<uint8_t> initrd(10000, 0x5a);
    auto state = load_linux(memory(), image, initrd, spec());
    ASSERT_TRUE(state) << state.error().message();

    expect_payload_at(16 * mib, 8192);
    EXPECT_EQ(state->mode, EntryState::Mode::Long64);
    EXPECT_EQ(state->rip, 16 * mib + 0x200);
    EXPECT_EQ(state->rsi, layout::boot_params);
    EXPECT_EQ(state->cr0, cr0_pe | cr0_et | cr0_pg);
    EXPECT_EQ(state->cr3, layout::page_tables);
    EXPECT_EQ(state->cr4, cr4_pae);
    EXPECT_EQ(state->efer, efer_lme | efer_lma);
    EXPECT_EQ(state->gdt_base, layout::gdt);
    EXPECT_EQ(state->gdt_limit, 31);
    EXPECT_EQ(state->code.selector, 0x10);
    EXPECT_TRUE(state->code.long_mode);
    EXPECT_FALSE(state->code.default_32);
    EXPECT_EQ(state->code.type, 0xb);
    EXPECT_EQ(state->data.selector, 0x18);
    EXPECT_EQ(state->data.type, 0x3);

    auto params = boot_params();
    EXPECT_EQ(params.hdr.type_of_loader, 0xff);
    EXPECT_EQ(params.hdr.loadflags, lb::loadflag_loaded_high | lb::loadflag_can_use_heap);
    EXPECT_EQ(params.hdr.heap_end_ptr, 0xfe00);
    EXPECT_EQ(params.hdr.cmd_line_ptr, layout::cmdline);
    EXPECT_EQ(params.ext_cmd_line_ptr, 0u);
    EXPECT_EQ(params.hdr.version, 0x020f);
    EXPECT_EQ(params.hdr.boot_flag, 0xaa55);
    EXPECT_EQ(params.hdr.header, lb::header_magic);
    EXPECT_EQ(params.hdr.init_size, 4 * mib);
    EXPECT_EQ(params.hdr.code32_start, 16 * mib);
    EXPECT_EQ(params.acpi_rsdp_addr, layout::acpi_tables);

    // The initrd sits at the top of RAM, 4 KiB aligned.
    uint64_t initrd_addr = (64 * mib - 10000) & ~0xfffull;
    EXPECT_EQ(params.hdr.ramdisk_image, initrd_addr);
    EXPECT_EQ(params.hdr.ramdisk_size, 10000u);
    EXPECT_EQ(params.ext_ramdisk_image, 0u);
    EXPECT_EQ(params.ext_ramdisk_size, 0u);
    EXPECT_EQ(read(initrd_addr, 10000), initrd);

    ASSERT_EQ(params.e820_entries, 3);
    EXPECT_EQ(params.e820_table[0].addr, 0u);
    EXPECT_EQ(params.e820_table[0].size, layout::ebda_start);
    EXPECT_EQ(params.e820_table[0].type, lb::e820_ram);
    EXPECT_EQ(params.e820_table[1].addr, layout::ebda_start);
    EXPECT_EQ(params.e820_table[1].type, lb::e820_reserved);
    EXPECT_EQ(params.e820_table[2].addr, mib);
    EXPECT_EQ(params.e820_table[2].size, 63 * mib);
    EXPECT_EQ(params.e820_table[2].type, lb::e820_ram);

    auto cmdline = read(layout::cmdline, 14);
    EXPECT_EQ(std::string(cmdline.begin(), cmdline.end() - 1), "console=ttyS0");
    EXPECT_EQ(cmdline.back(), 0);
}

TEST_F(LinuxLoader, BuildsIdentityPageTablesAndGdt)
{
    auto state = load_linux(memory(), make_bzimage(), {}, spec());
    ASSERT_TRUE(state) << state.error().message();
    uint64_t pml4 = layout::page_tables;
    uint64_t pdpt = pml4 + 0x1000;
    EXPECT_EQ(*memory().read_obj<uint64_t>(pml4), pdpt | 3);
    EXPECT_EQ(*memory().read_obj<uint64_t>(pml4 + 8), 0u);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_EQ(*memory().read_obj<uint64_t>(pdpt + i * 8), (pdpt + 0x1000 * (i + 1)) | 3);
    EXPECT_EQ(*memory().read_obj<uint64_t>(pdpt + 4 * 8), 0u);
    uint64_t pd0 = pdpt + 0x1000;
    EXPECT_EQ(*memory().read_obj<uint64_t>(pd0), 0x83u);
    EXPECT_EQ(*memory().read_obj<uint64_t>(pd0 + 8), (2 * mib) | 0x83);
    // Last 2 MiB page below 4 GiB, in the fourth page directory.
    EXPECT_EQ(*memory().read_obj<uint64_t>(pd0 + 3 * 0x1000 + 511 * 8), ((4ull << 30) - 2 * mib) | 0x83);

    EXPECT_EQ(*memory().read_obj<uint64_t>(layout::gdt), 0u);
    EXPECT_EQ(*memory().read_obj<uint64_t>(layout::gdt + 0x10), 0x00af9b000000ffffull);
    EXPECT_EQ(*memory().read_obj<uint64_t>(layout::gdt + 0x18), 0x00cf93000000ffffull);

    auto params = boot_params();
    EXPECT_EQ(params.hdr.ramdisk_image, 0u);
    EXPECT_EQ(params.hdr.ramdisk_size, 0u);
}

TEST_F(LinuxLoader, FallsBackBelowThePreferredAddress)
{
    use_ram(16 * mib); // pref_address 16 MiB is at the very end of RAM
    auto state = load_linux(memory(), make_bzimage(), {}, spec());
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(state->rip, 2 * mib + 0x200); // 1 MiB aligned up to kernel_alignment
    expect_payload_at(2 * mib, 8192);
}

TEST_F(LinuxLoader, NonRelocatableKernelLoadsAtOneMib)
{
    BzImageOptions o;
    o.relocatable = 0;
    std::vector<uint8_t> initrd(4096, 1);
    auto state = load_linux(memory(), make_bzimage(o), initrd, spec());
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(state->rip, mib + 0x200);
    expect_payload_at(mib, 8192);
    EXPECT_EQ(boot_params().hdr.ramdisk_image, 64 * mib - 4096);
}

TEST_F(LinuxLoader, InitrdRespectsInitrdAddrMax)
{
    BzImageOptions o;
    o.initrd_addr_max = 32 * mib - 1;
    std::vector<uint8_t> initrd(5000, 7);
    auto state = load_linux(memory(), make_bzimage(o), initrd, spec());
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(boot_params().hdr.ramdisk_image, (32 * mib - 5000) & ~0xfffull);
}

TEST_F(LinuxLoader, ShortHeaderCopiesOnlyItsLength)
{
    BzImageOptions o;
    o.header_length = 0x66; // ends at 0x268: kernel_info_offset not part of the header
    auto image = make_bzimage(o);
    std::memset(image.data() + 0x268, 0xee, 4);
    auto state = load_linux(memory(), image, {}, spec());
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(boot_params().hdr.kernel_info_offset, 0u);

    o.header_length = 0x20; // ends at 0x222: no xloadflags, so no 64-bit entry
    auto failed = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(failed);
    EXPECT_TRUE(mentions(failed.error(), "XLF_KERNEL_64")) << failed.error().message();
}

TEST_F(LinuxLoader, RejectsTruncatedImages)
{
    auto image = make_bzimage();
    auto r = load_linux(memory(), std::span(image).first(0x230), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "kernel /images/bzImage is truncated: the setup header")) << r.error().message();

    r = load_linux(memory(), std::span(image).first(setup_bytes), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "setup code takes 2560 bytes")) << r.error().message();

    r = load_linux(memory(), std::span(image).first(setup_bytes + 4000), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "declares 8192 bytes of protected-mode code")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsKernelsWithout64BitEntry)
{
    BzImageOptions o;
    o.version = 0x020b;
    auto r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "boot protocol 2.11; the 64-bit entry needs 2.12")) << r.error().message();

    o = {};
    o.xloadflags = 0;
    r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "has no 64-bit entry point")) << r.error().message();

    o = {};
    o.loadflags = 0;
    r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "LOADED_HIGH")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsKernelTooBigForRam)
{
    BzImageOptions o;
    o.init_size = 100 * mib;
    auto r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "kernel /images/bzImage is too big for the VM's RAM: it needs 100 MiB"))
        << r.error().message();
    EXPECT_TRUE(mentions(r.error(), "62 MiB available")) << r.error().message();

    o.relocatable = 0;
    r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "too big for the VM's RAM")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsNonRelocatableKernelInLowMemory)
{
    BzImageOptions o;
    o.relocatable = 0;
    o.pref_address = 0x10000;
    auto r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "below 1 MiB")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsBadAlignment)
{
    BzImageOptions o;
    o.kernel_alignment = 3 * mib;
    auto r = load_linux(memory(), make_bzimage(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "kernel_alignment")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsCommandLineLongerThanCmdlineSize)
{
    BzImageOptions o;
    o.cmdline_size = 10;
    EXPECT_TRUE(load_linux(memory(), make_bzimage(o), {}, spec("0123456789")));
    auto r = load_linux(memory(), make_bzimage(o), {}, spec("0123456789a"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "command line is 11 bytes long; kernel /images/bzImage accepts at most 10"))
        << r.error().message();
}

TEST_F(LinuxLoader, RejectsInitrdTooBig)
{
    std::vector<uint8_t> initrd(45 * mib, 0);
    auto r = load_linux(memory(), make_bzimage(), initrd, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "initrd /images/initrd is too big: it needs 45 MiB but only 44 MiB"))
        << r.error().message();

    BzImageOptions o;
    o.initrd_addr_max = 0; // nowhere to put it
    r = load_linux(memory(), make_bzimage(o), std::vector<uint8_t>(16, 0), spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "initrd /images/initrd is too big")) << r.error().message();
}

TEST_F(LinuxLoader, RejectsRamWithoutLowMemory)
{
    auto mem = vm::GuestMemory::create({{0, mib}});
    ASSERT_TRUE(mem);
    auto r = load_linux(*mem, make_bzimage(), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "beyond 1 MiB")) << r.error().message();
}

} // namespace
} // namespace vmgen::vmm
