// Resizing and compacting VHDX images: what the disk reads afterwards is checked against a mirror of every write,
// images with 512-byte sectors with qemu too (qemu-img check, info, compare against a raw mirror; qemu 7.2 opens
// neither 4 KiB-sector nor differencing VHDX images, so those are checked by reading them back).
#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"
#include "vm/disk/vhdx/power_loss/power_loss.h"
#include "vm/disk/vhdx/vhdx_test_fixture.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace vmgen::vm::disk {
namespace {

using namespace vmgen::protocols::disk;
using namespace vhdx_testing;

constexpr uint64_t mib = 1 << 20;

// Differs per sector and per seed, so stale or misplaced data shows.
std::vector<uint8_t> pattern(uint64_t offset, uint64_t length, uint8_t seed)
{
    std::vector<uint8_t> out(length);
    for (uint64_t i = 0; i < length; ++i) {
        const uint64_t pos = offset + i;
        out[i] = static_cast<uint8_t>(seed * 37 + pos / 512 * 11 + pos % 241 + 1);
    }
    return out;
}

std::unique_ptr<BlockDevice> open_ok(const std::string& p, bool read_only)
{
    auto d = open_vhdx(p, read_only);
    EXPECT_TRUE(d) << d.error().message();
    return d ? std::move(*d) : nullptr;
}

uint64_t file_size(const std::string& p) { return std::filesystem::file_size(p); }

class VhdxResizeTest : public VhdxTest {
protected:
    // Writes a pattern to the disk and the mirror.
    static void write(BlockDevice& d, std::vector<uint8_t>& mirror, uint64_t offset, uint64_t length, uint8_t seed)
    {
        auto data = pattern(offset, length, seed);
        auto r = d.write(offset, data);
        ASSERT_TRUE(r) << r.error().message();
        std::copy(data.begin(), data.end(), mirror.begin() + static_cast<std::ptrdiff_t>(offset));
    }

    static void discard(BlockDevice& d, std::vector<uint8_t>& mirror, uint64_t offset, uint64_t length)
    {
        auto r = d.discard(offset, length);
        ASSERT_TRUE(r) << r.error().message();
        std::fill_n(mirror.begin() + static_cast<std::ptrdiff_t>(offset), length, uint8_t{0});
    }

    static void resize(const std::string& p, uint64_t size, std::vector<uint8_t>* mirror = nullptr)
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        auto r = d->resize(size);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(d->size(), size);
        EXPECT_EQ(d->info().file_size, file_size(p));
        ASSERT_TRUE(d->close());
        if (mirror != nullptr)
            mirror->resize(size);
    }

    static void compact(const std::string& p)
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        auto r = d->compact();
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(d->info().file_size, file_size(p));
        ASSERT_TRUE(d->close());
    }

    void expect_contents(const std::string& p, const std::vector<uint8_t>& mirror)
    {
        auto d = open_ok(p, true);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->size(), mirror.size());
        EXPECT_TRUE(read_all(*d) == mirror);
    }

    // qemu's view: the image checks clean, has the mirror's size and contents.
    void expect_qemu_agrees(const std::string& p, const std::vector<uint8_t>& mirror)
    {
        sh("qemu-img check -f vhdx " + p);
        EXPECT_EQ(qemu_size(p), mirror.size());
        write_raw(path("mirror.raw"), mirror);
        sh("qemu-img compare -f vhdx -F raw " + p + " " + path("mirror.raw"));
    }

    static uint64_t qemu_size(const std::string& p)
    {
        std::unique_ptr<FILE, int (*)(FILE*)> f(::popen(("qemu-img info --output=json " + p).c_str(), "r"), ::pclose);
        std::string out;
        char buf[4096];
        for (size_t n; f && (n = std::fread(buf, 1, sizeof(buf), f.get())) > 0;)
            out.append(buf, n);
        const auto at = out.find("\"virtual-size\": ");
        return at == std::string::npos ? 0 : std::stoull(out.substr(at + 16));
    }
};

struct ResizeShape {
    DiskType type;
    uint32_t block_size;
    uint32_t sector;
};

class VhdxResizeShapeTest : public VhdxResizeTest, public ::testing::WithParamInterface<ResizeShape> {};

// Grows, shrinks into the middle of a block, grows back: the disk keeps what lies inside its size, the range it
// gains reads as zeroes (also where a shrink dropped data in the last block), and qemu agrees.
TEST_P(VhdxResizeShapeTest, GrowsShrinksAndGrowsBack)
{
    const ResizeShape c = GetParam();
    const uint64_t s = c.sector;
    const uint64_t b = c.block_size;
    const std::string p = path("disk.vhdx");
    const uint64_t size0 = 4 * b - 5 * s; // the last block partial
    ASSERT_TRUE(create_vhdx(p, size0, c.type, c.block_size, c.sector));
    std::vector<uint8_t> mirror(size0);
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 0, 8 * s, 1);
        write(*d, mirror, b + 3 * s, 2 * b, 2);
        write(*d, mirror, size0 - s, s, 3);
        ASSERT_TRUE(d->close());
    }
    const uint64_t file0 = file_size(p);

    const uint64_t size1 = 11 * b + 7 * s;
    resize(p, size1, &mirror);
    expect_contents(p, mirror);
    if (c.type == DiskType::Fixed) {
        EXPECT_GE(file_size(p), file0 + 7 * b);
    }
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().type, c.type);
        write(*d, mirror, size1 - 2 * s, 2 * s, 4);   // the new last sectors
        write(*d, mirror, 6 * b - s, 2 * s, 5);       // across two new blocks
        write(*d, mirror, size0 - 2 * s, 4 * s, 6);   // across the old end
        ASSERT_TRUE(d->close());
    }
    expect_contents(p, mirror);
    if (s == 512)
        expect_qemu_agrees(p, mirror);

    // Into the middle of block 2: blocks 3.. dropped, block 2 keeps its data past the new end, unseen.
    const uint64_t size2 = 2 * b + 3 * s;
    const uint64_t file1 = file_size(p);
    resize(p, size2, &mirror);
    expect_contents(p, mirror);
    if (c.type == DiskType::Fixed) {
        EXPECT_LE(file_size(p) + 8 * b, file1); // the blocks past the end are gone
    }
    if (s == 512)
        expect_qemu_agrees(p, mirror);

    resize(p, size1, &mirror);
    expect_contents(p, mirror); // zeroes past size2, the old data of block 2 included
    if (s == 512)
        expect_qemu_agrees(p, mirror);
    {
        auto d = open_ok(p, true);
        ASSERT_TRUE(d);
        std::vector<uint8_t> got(b);
        ASSERT_TRUE(d->read(2 * b, got));
        EXPECT_TRUE(std::equal(got.begin(), got.begin() + 3 * static_cast<std::ptrdiff_t>(s), mirror.begin() +
                                                                                          2 * static_cast<std::ptrdiff_t>(b)));
        EXPECT_TRUE(std::all_of(got.begin() + 3 * static_cast<std::ptrdiff_t>(s), got.end(),
                                [](uint8_t x) { return x == 0; }));
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, VhdxResizeShapeTest,
                         ::testing::Values(ResizeShape{DiskType::Dynamic, 1 << 20, 512},
                                           ResizeShape{DiskType::Dynamic, 2 << 20, 4096},
                                           ResizeShape{DiskType::Fixed, 1 << 20, 512},
                                           ResizeShape{DiskType::Fixed, 2 << 20, 4096}),
                         [](const auto& param_info) {
                             const ResizeShape& c = param_info.param;
                             return fmt::format("{}_{}K_{}", c.type == DiskType::Fixed ? "fixed" : "dynamic",
                                                c.block_size >> 10, c.sector);
                         });

// Images qemu made and wrote, grown and shrunk by us, read back by qemu.
TEST_F(VhdxResizeTest, ResizesQemuImages)
{
    for (const char* subformat : {"dynamic", "fixed"}) {
        SCOPED_TRACE(subformat);
        std::string p = create(std::string("subformat=") + subformat + ",block_size=2M", "20M");
        qemu_write(p, "-c 'write -P 0x5a 1M 3M' -c 'write -P 0x6b 19M 1M'");
        auto mirror = qemu_raw(p);
        resize(p, (50 << 20) + 512, &mirror);
        expect_qemu_agrees(p, mirror);
        qemu_write(p, "-c 'write -P 0x7c 49M 1M'");
        mirror = qemu_raw(p);
        expect_contents(p, mirror);
        resize(p, 3 << 20, &mirror);
        expect_qemu_agrees(p, mirror);
        resize(p, 8 << 20, &mirror);
        expect_qemu_agrees(p, mirror);
        std::remove(p.c_str());
    }
}

// 1 MiB blocks: the 1 MiB BAT region holds 131072 entries, 128 GiB. Growing past that moves the BAT to a new
// region at the end of the file (the region tables change through the log).
TEST_F(VhdxResizeTest, GrowingMovesAFullBat)
{
    const std::string p = path("disk.vhdx");
    ASSERT_TRUE(create_vhdx(p, 8 << 20, DiskType::Dynamic, 1 << 20, 512));
    const uint64_t old_bat = bat_offset(p);
    auto block = [](uint64_t blk) { return std::vector<uint8_t>(mib, static_cast<uint8_t>(0x20 + blk)); };
    auto expect_blocks = [&]() {
        auto d = open_ok(p, true);
        ASSERT_TRUE(d);
        for (uint64_t blk = 0; blk < 8; ++blk) {
            std::vector<uint8_t> got(mib);
            ASSERT_TRUE(d->read(blk * mib, got));
            EXPECT_TRUE(got == block(blk)) << blk;
        }
    };
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        for (uint64_t blk = 0; blk < 8; ++blk)
            ASSERT_TRUE(d->write(blk * mib, block(blk)));
        ASSERT_TRUE(d->close());
    }
    const uint64_t size = 130ULL << 30;
    resize(p, size);
    EXPECT_NE(bat_offset(p), old_bat);
    auto rt1 = read_bytes(p, vhdx_region_table1_offset, vhdx_region_table_size);
    auto rt2 = read_bytes(p, vhdx_region_table2_offset, vhdx_region_table_size);
    EXPECT_TRUE(rt1 == rt2);
    expect_blocks();
    sh("qemu-img check -f vhdx " + p);
    EXPECT_EQ(qemu_size(p), size);
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        ASSERT_TRUE(d->write(size - mib, std::vector<uint8_t>(mib, 0x71)));
        ASSERT_TRUE(d->write(64ULL << 30, std::vector<uint8_t>(4096, 0x72)));
        ASSERT_TRUE(d->close());
    }
    sh("qemu-img check -f vhdx " + p);
    sh("qemu-io -f vhdx -r -c 'read -P 0x20 0 1M' -c 'read -P 0x23 3M 1M' -c 'read -P 0x27 7M 1M' "
       "-c 'read -P 0 8M 1M' -c 'read -P 0x71 133119M 1M' -c 'read -P 0x72 64G 4k' -c 'read -P 0 100G 1M' " + p);
    // Shrinking back keeps the moved BAT; compacting gives the old BAT region's space to the blocks.
    resize(p, 8 << 20);
    compact(p);
    sh("qemu-img check -f vhdx " + p);
    EXPECT_EQ(qemu_size(p), 8u << 20);
    expect_blocks();
    sh("qemu-io -f vhdx -r -c 'read -P 0x20 0 1M' -c 'read -P 0x27 7M 1M' " + p);
}

TEST_F(VhdxResizeTest, RefusesWhatItCannotDo)
{
    const std::string p = path("disk.vhdx");
    ASSERT_TRUE(create_vhdx(p, 8 << 20, DiskType::Dynamic, 1 << 20, 4096));
    const std::string child = path("child.vhdx");
    ASSERT_TRUE(create_vhdx_differencing(child, p));
    auto before = whole_file(p);
    auto child_before = whole_file(child);
    auto refused = [](BlockDevice& d, uint64_t size, const std::string& what) {
        auto r = d.resize(size);
        ASSERT_FALSE(r) << size;
        EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
        EXPECT_EQ(d.size(), 8u << 20);
    };
    {
        auto d = open_ok(p, true);
        ASSERT_TRUE(d);
        refused(*d, 16 << 20, "read-only");
        auto c = open_ok(child, false);
        ASSERT_TRUE(c);
        refused(*c, 16 << 20, "a differencing disk has its parent's size");
        refused(*c, 4 << 20, "a differencing disk has its parent's size");
    }
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        refused(*d, 0, "multiple of 4096");
        refused(*d, (16 << 20) + 512, "multiple of 4096");
        refused(*d, (64ULL << 40) + 4096, "64 TiB");
        ASSERT_TRUE(d->resize(8 << 20)); // the same size: nothing to do
    }
    EXPECT_TRUE(whole_file(p) == before);
    EXPECT_TRUE(whole_file(child) == child_before);
}

// Discarded blocks leave holes; compaction moves the blocks stored last into them and truncates the file.
TEST_F(VhdxResizeTest, CompactionGivesBackDiscardedBlocks)
{
    for (uint32_t sector : {512u, 4096u}) {
        SCOPED_TRACE(sector);
        const std::string p = path(fmt::format("disk{}.vhdx", sector));
        const uint64_t size = 64 << 20;
        ASSERT_TRUE(create_vhdx(p, size, DiskType::Dynamic, 1 << 20, sector));
        std::vector<uint8_t> mirror(size);
        {
            auto d = open_ok(p, false);
            ASSERT_TRUE(d);
            // Allocated in an order unlike the disk's: 40 blocks, then 20 of the first ones discarded.
            for (uint64_t i = 0; i < 40; ++i) {
                const uint64_t blk = (i * 23) % 64;
                write(*d, mirror, blk * mib + (i % 3) * sector, mib / 2, static_cast<uint8_t>(i));
            }
            for (uint64_t i = 0; i < 40; i += 2)
                discard(*d, mirror, (i * 23) % 64 * mib, mib);
            ASSERT_TRUE(d->close());
        }
        const uint64_t before = file_size(p);
        compact(p);
        EXPECT_LE(file_size(p) + (20 << 20), before);
        expect_contents(p, mirror);
        if (sector == 512)
            expect_qemu_agrees(p, mirror);
        // Still a working image: more writes, discards and another compaction.
        {
            auto d = open_ok(p, false);
            ASSERT_TRUE(d);
            write(*d, mirror, 63 * mib, mib, 0x77);
            discard(*d, mirror, 23 * mib, mib);
            ASSERT_TRUE(d->flush());
            auto r = d->compact();
            ASSERT_TRUE(r) << r.error().message();
            write(*d, mirror, 5 * mib, 4096, 0x78);
            ASSERT_TRUE(d->close());
        }
        expect_contents(p, mirror);
        if (sector == 512)
            expect_qemu_agrees(p, mirror);
        // Nothing more to give back: the file stays as it is, byte for byte.
        const auto compacted = whole_file(p);
        compact(p);
        EXPECT_TRUE(whole_file(p) == compacted);
    }
}

// Blocks dropped by a shrink are given back too.
TEST_F(VhdxResizeTest, CompactionAfterAShrink)
{
    const std::string p = path("disk.vhdx");
    ASSERT_TRUE(create_vhdx(p, 32 << 20, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> mirror(32 << 20);
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 30 * mib, 2 * mib, 1); // allocated first, then dropped
        write(*d, mirror, 0, 4 * mib, 2);
        ASSERT_TRUE(d->close());
    }
    resize(p, 16 << 20, &mirror);
    const uint64_t before = file_size(p);
    compact(p);
    EXPECT_EQ(file_size(p) + 2 * mib, before);
    expect_contents(p, mirror);
    expect_qemu_agrees(p, mirror);
}

TEST_F(VhdxResizeTest, CompactionLeavesFixedImagesAlone)
{
    const std::string p = path("disk.vhdx");
    ASSERT_TRUE(create_vhdx(p, 8 << 20, DiskType::Fixed, 1 << 20, 512));
    auto before = whole_file(p);
    compact(p);
    EXPECT_TRUE(whole_file(p) == before);
    auto d = open_ok(p, true);
    ASSERT_TRUE(d);
    auto r = d->compact();
    EXPECT_TRUE(r);
}

// A differencing child: payload blocks and sector bitmap blocks move, the parent's data keeps showing where the
// child stores nothing, the parent is untouched.
TEST_F(VhdxResizeTest, CompactsADifferencingChild)
{
    const std::string parent = path("parent.vhdx");
    const std::string child = path("child.vhdx");
    const uint64_t size = 32 << 20;
    ASSERT_TRUE(create_vhdx(parent, size, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> mirror(size);
    {
        auto d = open_ok(parent, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 0, size, 1);
        ASSERT_TRUE(d->close());
    }
    ASSERT_TRUE(create_vhdx_differencing(child, parent));
    const auto parent_bytes = whole_file(parent);
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        ASSERT_EQ(d->info().block_size, 1u << 20);
        for (uint64_t blk = 0; blk < 16; ++blk) // partially present: bitmap updates
            write(*d, mirror, blk * mib + 4096, 8192, static_cast<uint8_t>(10 + blk));
        for (uint64_t blk = 16; blk < 32; ++blk) // fully present
            write(*d, mirror, blk * mib, mib, static_cast<uint8_t>(40 + blk));
        for (uint64_t blk = 0; blk < 32; blk += 3) // zero blocks: their space goes
            discard(*d, mirror, blk * mib, mib);
        ASSERT_TRUE(d->close());
    }
    const uint64_t before = file_size(child);
    compact(child);
    EXPECT_LE(file_size(child) + (10 << 20), before);
    expect_contents(child, mirror);
    EXPECT_TRUE(whole_file(parent) == parent_bytes);
    // The compacted child still takes writes of every kind.
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 3 * mib + 512, 512, 0x61);
        write(*d, mirror, 4 * mib + 512, 512, 0x62);
        write(*d, mirror, 30 * mib, mib, 0x63);
        ASSERT_TRUE(d->close());
    }
    expect_contents(child, mirror);
}

// Within an open, the space of discarded blocks serves new ones: the file does not grow.
TEST_F(VhdxResizeTest, DiscardedSpaceServesNewBlocks)
{
    const std::string p = path("disk.vhdx");
    ASSERT_TRUE(create_vhdx(p, 32 << 20, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> mirror(32 << 20);
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 0, 8 * mib, 1);
        const uint64_t full = file_size(p);
        discard(*d, mirror, 2 * mib, 3 * mib);
        write(*d, mirror, 20 * mib + 512, 1024, 2); // partial: the rest of the reused block reads zeroes
        write(*d, mirror, 21 * mib, 2 * mib, 3);
        write(*d, mirror, 30 * mib, 512, 4);        // no more room: appended
        EXPECT_TRUE(read_all(*d) == mirror);
        EXPECT_EQ(file_size(p), full + mib);
        ASSERT_TRUE(d->close());
    }
    expect_contents(p, mirror);
    expect_qemu_agrees(p, mirror);
}

// Partial writes to partially present blocks change sector bitmaps: their log entries wait for flush(), so a
// stream of small writes costs a few flushes, not two per write; flush() makes all of it durable.
TEST_F(VhdxResizeTest, BitmapUpdatesWaitForFlush)
{
    const std::string parent = path("parent.vhdx");
    const std::string child = path("child.vhdx");
    ASSERT_TRUE(create_vhdx(parent, 16 << 20, DiskType::Dynamic, 1 << 20, 512));
    ASSERT_TRUE(create_vhdx_differencing(child, parent));
    std::vector<uint8_t> mirror(16 << 20);
    const std::string crashed = path("crashed.vhdx");
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        write(*d, mirror, 0, 512, 1); // the open's header updates and the first allocation
        ASSERT_TRUE(d->flush());
        arm_power_loss(0, PowerLossMode::KeepAll, 0);
        for (uint64_t i = 1; i < 200; ++i)
            write(*d, mirror, (i % 16) * mib + (i / 16) * 4096 + 512, 1024, static_cast<uint8_t>(i));
        ASSERT_TRUE(d->flush());
        const uint64_t syncs = power_loss_syncs();
        disarm_power_loss();
        EXPECT_LE(syncs, 8u);
        // A copy now is the file after a crash: the log replays what flush() committed.
        sh("cp " + child + " " + crashed);
    }
    expect_contents(child, mirror);
    auto d = open_ok(crashed, false);
    ASSERT_TRUE(d);
    EXPECT_TRUE(read_all(*d) == mirror);
}

} // namespace
} // namespace vmgen::vm::disk
