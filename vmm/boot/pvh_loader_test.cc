#include "vmm/boot/pvh_loader.h"

#include "protocols/boot/pvh.h"
#include "vmm/boot/cpu_setup.h"
#include "vmm/boot/layout.h"
#include "vmm/boot/synthetic_kernels.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vmgen::vmm {
namespace {

namespace pvh = protocols::pvh;
using testing::make_pvh_elf;
using testing::mib;
using testing::payload_byte;
using testing::PvhElfOptions;

bool mentions(const Error& e, std::string_view what) { return e.message().find(what) != std::string::npos; }

class PvhLoader : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto mem = vm::GuestMemory::create_x86(64 * mib);
        ASSERT_TRUE(mem);
        m_memory.emplace(std::move(*mem));
        // Dirty the area the segment's bss covers, to see it cleared.
        ASSERT_TRUE(memory().fill(2 * mib, 0xaa, 64 * 1024));
    }
    const vm::GuestMemory& memory() { return *m_memory; }
    std::vector<uint8_t> read(uint64_t gpa, uint64_t len)
    {
        std::vector<uint8_t> out(len);
        EXPECT_TRUE(memory().read(gpa, out));
        return out;
    }
    BootSpec spec(std::string cmdline = "console=hvc0")
    {
        BootSpec s;
        s.kernel_path = "/images/vmlinux";
        s.initrd_path = "/images/initrd";
        s.cmdline = std::move(cmdline);
        s.rsdp_gpa = layout::acpi_tables;
        return s;
    }
    void expect_loaded(uint64_t paddr, uint64_t filesz, uint64_t memsz)
    {
        auto bytes = read(paddr, memsz);
        for (uint64_t i = 0; i < filesz; ++i)
            ASSERT_EQ(bytes[i], payload_byte(i)) << "at " << i;
        for (uint64_t i = filesz; i < memsz; ++i)
            ASSERT_EQ(bytes[i], 0) << "at " << i;
        EXPECT_EQ(read(paddr + memsz, 1)[0], 0xaa); // nothing written past memsz
    }

    std::optional<vm::GuestMemory> m_memory;
};

TEST_F(PvhLoader, LoadsElf64WithStartInfo)
{
    std::vector<uint8_t> initrd(6000, 0x42);
    auto state = load_pvh(memory(), make_pvh_elf(), initrd, spec());
    ASSERT_TRUE(state) << state.error().message();
    expect_loaded(2 * mib, 4096, 8192);

    EXPECT_EQ(state->mode, EntryState::Mode::Protected32);
    EXPECT_EQ(state->rip, 2 * mib + 0x40);
    EXPECT_EQ(state->rbx, layout::pvh_start_info);
    EXPECT_EQ(state->cr0, cr0_pe | cr0_et);
    EXPECT_EQ(state->cr3, 0u);
    EXPECT_EQ(state->cr4, 0u);
    EXPECT_EQ(state->efer, 0u);
    EXPECT_EQ(state->gdt_base, layout::gdt);
    EXPECT_EQ(state->gdt_limit, 31);
    EXPECT_EQ(state->code.selector, 0x10);
    EXPECT_EQ(state->code.type, 0xb);
    EXPECT_TRUE(state->code.code);
    EXPECT_FALSE(state->code.long_mode);
    EXPECT_TRUE(state->code.default_32);
    EXPECT_EQ(state->data.selector, 0x18);
    EXPECT_EQ(state->data.type, 0x3);
    EXPECT_EQ(*memory().read_obj<uint64_t>(layout::gdt + 0x10), 0x00cf9b000000ffffull);
    EXPECT_EQ(*memory().read_obj<uint64_t>(layout::gdt + 0x18), 0x00cf93000000ffffull);

    auto info = *memory().read_obj<pvh::StartInfo>(layout::pvh_start_info);
    EXPECT_EQ(info.magic, pvh::start_info_magic);
    EXPECT_EQ(info.version, 1u);
    EXPECT_EQ(info.nr_modules, 1u);
    EXPECT_EQ(info.cmdline_paddr, layout::cmdline);
    EXPECT_EQ(info.rsdp_paddr, layout::acpi_tables);
    EXPECT_EQ(info.modlist_paddr, layout::pvh_start_info + sizeof(pvh::StartInfo));
    EXPECT_EQ(info.memmap_paddr, info.modlist_paddr + sizeof(pvh::ModlistEntry));
    ASSERT_EQ(info.memmap_entries, 3u);

    auto module = *memory().read_obj<pvh::ModlistEntry>(info.modlist_paddr);
    EXPECT_EQ(module.paddr, (64 * mib - 6000) & ~0xfffull);
    EXPECT_EQ(module.size, 6000u);
    EXPECT_EQ(read(module.paddr, module.size), initrd);

    pvh::MemmapEntry map[3];
    ASSERT_TRUE(memory().read(info.memmap_paddr, std::span(reinterpret_cast<uint8_t*>(map), sizeof(map))));
    EXPECT_EQ(map[0].addr, 0u);
    EXPECT_EQ(map[0].size, layout::ebda_start);
    EXPECT_EQ(map[0].type, pvh::memmap_type_ram);
    EXPECT_EQ(map[1].addr, layout::ebda_start);
    EXPECT_EQ(map[1].type, pvh::memmap_type_reserved);
    EXPECT_EQ(map[2].addr, mib);
    EXPECT_EQ(map[2].size, 63 * mib);
    EXPECT_EQ(map[2].type, pvh::memmap_type_ram);

    auto cmdline = read(layout::cmdline, 13);
    EXPECT_EQ(std::string(cmdline.begin(), cmdline.end() - 1), "console=hvc0");
    EXPECT_EQ(cmdline.back(), 0);
}

TEST_F(PvhLoader, FreshRamIsNotClearedAgain)
{
    // With ram_is_zero the loader leaves the bss alone (fresh RAM is already zero; clearing it would
    // allocate host pages): the dirt this fixture put there stays.
    auto s = spec();
    s.ram_is_zero = true;
    auto state = load_pvh(memory(), make_pvh_elf(), {}, s);
    ASSERT_TRUE(state) << state.error().message();
    auto bytes = read(2 * mib, 8192);
    EXPECT_EQ(bytes[0], payload_byte(0));
    EXPECT_EQ(bytes[4095], payload_byte(4095));
    EXPECT_EQ(bytes[4096], 0xaa);
    EXPECT_EQ(bytes[8191], 0xaa);
}

TEST_F(PvhLoader, LoadsElf32WithoutInitrd)
{
    PvhElfOptions o;
    o.is_64 = false;
    o.filesz = 100;
    o.memsz = 5000;
    auto state = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_TRUE(state) << state.error().message();
    expect_loaded(2 * mib, 100, 5000);
    EXPECT_EQ(state->rip, 2 * mib + 0x40);
    auto info = *memory().read_obj<pvh::StartInfo>(layout::pvh_start_info);
    EXPECT_EQ(info.nr_modules, 0u);
    EXPECT_EQ(info.modlist_paddr, 0u);
    EXPECT_EQ(info.memmap_paddr, layout::pvh_start_info + sizeof(pvh::StartInfo));
}

TEST_F(PvhLoader, AcceptsA64BitEntryNote)
{
    PvhElfOptions o;
    o.entry_size = 8;
    o.entry = 2 * mib + 0x1ff0;
    auto state = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_TRUE(state) << state.error().message();
    EXPECT_EQ(state->rip, 2 * mib + 0x1ff0);
}

TEST_F(PvhLoader, RejectsElfWithoutPvhNote)
{
    PvhElfOptions o;
    o.entry_size = 0;
    auto r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "kernel /images/vmlinux has no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel");

    o = {};
    o.note_type = 17;
    EXPECT_FALSE(load_pvh(memory(), make_pvh_elf(o), {}, spec()));

    o = {};
    o.entry_size = 2;
    r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "expected 4 or 8")) << r.error().message();
}

TEST_F(PvhLoader, RejectsEntryOutsideTheSegments)
{
    PvhElfOptions o;
    o.entry = 2 * mib + 8192;
    auto r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "not inside a loaded segment")) << r.error().message();

    o.entry_size = 8;
    o.entry = 1ull << 33;
    r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "above 4 GiB")) << r.error().message();
}

TEST_F(PvhLoader, RejectsSegmentsInTheLowBootArea)
{
    PvhElfOptions o;
    o.paddr = 0x8000;
    o.entry = 0x8000;
    auto r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "segment 0 at 0x8000 overlaps the low boot area below 1 MiB"))
        << r.error().message();
}

TEST_F(PvhLoader, RejectsSegmentsBeyondRam)
{
    PvhElfOptions o;
    o.memsz = 80 * mib;
    auto r = load_pvh(memory(), make_pvh_elf(o), {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "kernel /images/vmlinux is too big for the VM's RAM: segment 0")) << r.error().message();
    EXPECT_TRUE(mentions(r.error(), "18 MiB more than the 64 MiB")) << r.error().message();

    o = {};
    o.paddr = 0xfffffffffffff000ull; // wraps
    o.entry = o.paddr;
    o.entry_size = 8;
    EXPECT_FALSE(load_pvh(memory(), make_pvh_elf(o), {}, spec()));
}

TEST_F(PvhLoader, RejectsHeadersOutsideTheFile)
{
    auto elf = make_pvh_elf();
    uint64_t phoff = elf.size();
    std::memcpy(elf.data() + 32, &phoff, sizeof(phoff));
    auto r = load_pvh(memory(), elf, {}, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "kernel /images/vmlinux: ELF program headers")) << r.error().message();
}

TEST_F(PvhLoader, RejectsCommandLineTooLong)
{
    std::string cmdline(layout::cmdline_max - 1, 'x');
    EXPECT_TRUE(load_pvh(memory(), make_pvh_elf(), {}, spec(cmdline)));
    cmdline.push_back('y');
    auto r = load_pvh(memory(), make_pvh_elf(), {}, spec(cmdline));
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "command line is 65536 bytes long")) << r.error().message();
}

TEST_F(PvhLoader, RejectsInitrdTooBig)
{
    std::vector<uint8_t> initrd(63 * mib, 0);
    auto r = load_pvh(memory(), make_pvh_elf(), initrd, spec());
    ASSERT_FALSE(r);
    EXPECT_TRUE(mentions(r.error(), "initrd /images/initrd is too big: it needs 63 MiB")) << r.error().message();
}

} // namespace
} // namespace vmgen::vmm
