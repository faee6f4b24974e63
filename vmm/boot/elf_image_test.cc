#include "vmm/boot/elf_image.h"

#include "vmm/boot/synthetic_kernels.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vmgen::vmm {
namespace {

using testing::make_pvh_elf;
using testing::PvhElfOptions;

template <typename T>
void poke(std::vector<uint8_t>& bytes, uint64_t offset, T value)
{
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

bool mentions(const Error& e, std::string_view what) { return e.message().find(what) != std::string::npos; }

TEST(ElfImage, ParsesElf64)
{
    auto file = make_pvh_elf();
    auto elf = parse_elf(file, "k");
    ASSERT_TRUE(elf) << elf.error().message();
    EXPECT_TRUE(elf->is_64);
    EXPECT_EQ(elf->machine, elf_em_x86_64);
    ASSERT_EQ(elf->segments.size(), 2u);
    EXPECT_EQ(elf->segments[0].type, elf_pt_load);
    EXPECT_EQ(elf->segments[0].paddr, 2 * testing::mib);
    EXPECT_EQ(elf->segments[0].offset, testing::elf_segment_offset);
    EXPECT_EQ(elf->segments[0].filesz, 4096u);
    EXPECT_EQ(elf->segments[0].memsz, 8192u);
    EXPECT_EQ(elf->segments[1].type, elf_pt_note);

    auto notes = parse_elf_notes(file, elf->segments[1], "k");
    ASSERT_TRUE(notes) << notes.error().message();
    ASSERT_EQ(notes->size(), 2u);
    EXPECT_EQ((*notes)[0].name, "GNU");
    EXPECT_EQ((*notes)[1].name, "Xen");
    EXPECT_EQ((*notes)[1].type, 18u);
    EXPECT_EQ((*notes)[1].desc.size(), 4u);
}

TEST(ElfImage, ParsesElf32)
{
    PvhElfOptions o;
    o.is_64 = false;
    auto file = make_pvh_elf(o);
    auto elf = parse_elf(file, "k");
    ASSERT_TRUE(elf) << elf.error().message();
    EXPECT_FALSE(elf->is_64);
    EXPECT_EQ(elf->machine, elf_em_386);
    ASSERT_EQ(elf->segments.size(), 2u);
    EXPECT_EQ(elf->segments[0].paddr, 2 * testing::mib);
    EXPECT_EQ(elf->segments[0].memsz, 8192u);
}

TEST(ElfImage, RejectsTruncatedHeader)
{
    auto file = make_pvh_elf();
    file.resize(40);
    auto elf = parse_elf(file, "kernel x");
    ASSERT_FALSE(elf);
    EXPECT_TRUE(mentions(elf.error(), "kernel x is truncated")) << elf.error().message();
}

TEST(ElfImage, RejectsProgramHeadersOutsideTheFile)
{
    auto file = make_pvh_elf();
    poke<uint64_t>(file, 32, file.size() - 10);
    auto elf = parse_elf(file, "k");
    ASSERT_FALSE(elf);
    EXPECT_TRUE(mentions(elf.error(), "program headers")) << elf.error().message();

    poke<uint64_t>(file, 32, ~0ull - 8); // would wrap
    EXPECT_FALSE(parse_elf(file, "k"));
}

TEST(ElfImage, RejectsSegmentOutsideTheFile)
{
    auto file = make_pvh_elf();
    poke<uint64_t>(file, 64 + 32, 1ull << 40); // PT_LOAD p_filesz
    auto elf = parse_elf(file, "k");
    ASSERT_FALSE(elf);
    EXPECT_TRUE(mentions(elf.error(), "outside the file")) << elf.error().message();

    file = make_pvh_elf();
    poke<uint64_t>(file, 64 + 8, ~0ull); // p_offset
    EXPECT_FALSE(parse_elf(file, "k"));
}

TEST(ElfImage, RejectsFileSizeAboveMemorySize)
{
    auto file = make_pvh_elf();
    poke<uint64_t>(file, 64 + 40, 16); // p_memsz < p_filesz
    auto elf = parse_elf(file, "k");
    ASSERT_FALSE(elf);
    EXPECT_TRUE(mentions(elf.error(), "more file bytes")) << elf.error().message();
}

TEST(ElfImage, RejectsBadIdentification)
{
    auto file = make_pvh_elf();
    file[5] = 2; // big-endian
    EXPECT_FALSE(parse_elf(file, "k"));
    file = make_pvh_elf();
    file[4] = 3; // bad class
    EXPECT_FALSE(parse_elf(file, "k"));
    file = make_pvh_elf();
    poke<uint16_t>(file, 18, 40); // ARM
    auto elf = parse_elf(file, "k");
    ASSERT_FALSE(elf);
    EXPECT_TRUE(mentions(elf.error(), "not x86"));
    file = make_pvh_elf();
    poke<uint16_t>(file, 54, 8); // phentsize too small
    EXPECT_FALSE(parse_elf(file, "k"));
    file = make_pvh_elf();
    poke<uint16_t>(file, 56, 0); // no program headers
    EXPECT_FALSE(parse_elf(file, "k"));
}

TEST(ElfImage, RejectsNotesRunningPastTheirSegment)
{
    auto file = make_pvh_elf();
    auto elf = parse_elf(file, "k");
    ASSERT_TRUE(elf);
    uint64_t notes_at = elf->segments[1].offset;
    poke<uint32_t>(file, notes_at + 4, 0xfffffff0u); // GNU note descsz
    auto notes = parse_elf_notes(file, elf->segments[1], "k");
    ASSERT_FALSE(notes);
    EXPECT_TRUE(mentions(notes.error(), "runs past")) << notes.error().message();

    file = make_pvh_elf();
    poke<uint32_t>(file, notes_at, 0xffffffffu); // namesz
    EXPECT_FALSE(parse_elf_notes(file, elf->segments[1], "k"));

    ElfSegment short_segment = elf->segments[1];
    short_segment.filesz = 7; // shorter than a note header
    EXPECT_FALSE(parse_elf_notes(make_pvh_elf(), short_segment, "k"));
}

} // namespace
} // namespace vmgen::vmm
