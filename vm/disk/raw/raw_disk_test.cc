#include "vm/disk/raw/raw_disk.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace vmgen::vm::disk {
namespace {

class RawDiskTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vmgen_raw_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string path(const char* name) const { return m_dir + "/" + name; }

    std::string m_dir;
};

TEST_F(RawDiskTest, CreateIsSparseAndReadsZeroes)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 64 << 20));
    struct stat st { };
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 64 << 20);
    EXPECT_LT(st.st_blocks * 512, 1 << 20);
    auto disk = open_raw(p, false);
    ASSERT_TRUE(disk) << disk.error().message();
    EXPECT_EQ((*disk)->size(), 64u << 20);
    EXPECT_EQ((*disk)->info().format, DiskFormat::Raw);
    std::vector<uint8_t> buf(4096, 0xff);
    ASSERT_TRUE((*disk)->read(1 << 20, buf));
    EXPECT_EQ(buf, std::vector<uint8_t>(4096, 0));
    EXPECT_FALSE(create_raw(p, 1 << 20)) << "must not overwrite";
    EXPECT_FALSE(create_raw(path("b.img"), 1000));
    EXPECT_FALSE(create_raw(path("c.img"), 0));
}

TEST_F(RawDiskTest, WriteReadFlushDiscard)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 8 << 20));
    auto disk = std::move(*open_raw(p, false));
    std::vector<uint8_t> data(3 * 4096);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<uint8_t>(i * 7 + 1);
    ASSERT_TRUE(disk->write(4096, data));
    ASSERT_TRUE(disk->flush());
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(disk->read(4096, back));
    EXPECT_EQ(back, data);
    ASSERT_TRUE(disk->discard(8192, 4096));
    ASSERT_TRUE(disk->read(4096, back));
    for (size_t i = 0; i < back.size(); ++i)
        ASSERT_EQ(back[i], (i >= 4096 && i < 8192) ? 0 : data[i]) << i;
    // Unaligned discard inside a page still zeroes exactly the sectors asked for.
    ASSERT_TRUE(disk->discard(4096 + 512, 512));
    ASSERT_TRUE(disk->read(4096, back));
    EXPECT_EQ(back[511], data[511]);
    EXPECT_EQ(back[512], 0);
    EXPECT_EQ(back[1024], data[1024]);
    // The last sector is addressable.
    ASSERT_TRUE(disk->write((8 << 20) - 512, std::span(data).first(512)));
}

// Whether this file system answers RWF_NOWAIT reads (ext4, xfs, btrfs do; tmpfs only on newer kernels).
bool nowait_reads_supported(const std::string& p)
{
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint8_t byte = 0;
    iovec iov {&byte, 1};
    ssize_t n = ::preadv2(fd, &iov, 1, 0, RWF_NOWAIT);
    bool supported = n >= 0 || errno != EOPNOTSUPP;
    ::close(fd);
    return supported;
}

TEST_F(RawDiskTest, NowaitReadsComeFromThePageCacheOnly)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 8 << 20));
    if (!nowait_reads_supported(p))
        GTEST_SKIP() << "the file system of " << p << " does not take RWF_NOWAIT reads";
    auto disk = std::move(*open_raw(p, false));
    std::vector<uint8_t> data(64 * 1024);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<uint8_t>(i * 13 + 5);
    auto written = disk->write_nowait(1 << 20, data);
    ASSERT_TRUE(written) << written.error().message();
    EXPECT_TRUE(*written) << "a buffered write never waits for the device";
    std::vector<uint8_t> back(data.size());
    auto cached = disk->read_nowait(1 << 20, back);
    ASSERT_TRUE(cached) << cached.error().message();
    ASSERT_TRUE(*cached) << "just written: in the page cache";
    EXPECT_EQ(back, data);

    // Written back and dropped from the cache: the nowait read declines, the blocking read still works.
    ASSERT_TRUE(disk->flush());
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ::close(fd);
    std::fill(back.begin(), back.end(), uint8_t {0});
    auto uncached = disk->read_nowait(1 << 20, back);
    ASSERT_TRUE(uncached) << uncached.error().message();
    EXPECT_FALSE(*uncached) << "a read that needs the device must not be done on a thread that cannot wait";
    ASSERT_TRUE(disk->read(1 << 20, back));
    EXPECT_EQ(back, data);

    // The same checks as the blocking calls.
    EXPECT_FALSE(disk->read_nowait(100, std::span(back).first(512)));
    EXPECT_FALSE(disk->write_nowait(8 << 20, std::span(data).first(512)));
    auto read_only = std::move(*open_raw(p, true));
    EXPECT_FALSE(read_only->write_nowait(0, std::span(data).first(512)));
}

TEST_F(RawDiskTest, BoundsAndAlignment)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 1 << 20));
    auto disk = std::move(*open_raw(p, false));
    std::vector<uint8_t> buf(512);
    EXPECT_FALSE(disk->read(1, buf));
    EXPECT_FALSE(disk->read(0, std::span(buf).first(100)));
    EXPECT_FALSE(disk->read(1 << 20, buf));
    EXPECT_FALSE(disk->write(1 << 20, buf));
    EXPECT_FALSE(disk->write(~0ull - 511, buf));
    EXPECT_FALSE(disk->discard((1 << 20) - 512, 1024));
    EXPECT_FALSE(disk->discard(0, 100));
    EXPECT_TRUE(disk->read(0, std::span<uint8_t>()));
}

TEST_F(RawDiskTest, ReadOnly)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 1 << 20));
    auto disk = std::move(*open_raw(p, true));
    EXPECT_TRUE(disk->read_only());
    std::vector<uint8_t> buf(512, 1);
    EXPECT_TRUE(disk->read(0, buf));
    auto w = disk->write(0, buf);
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().message().find("read-only"), std::string::npos);
    EXPECT_FALSE(disk->discard(0, 512));
    EXPECT_TRUE(disk->flush());
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed)
{
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
    return v;
}

TEST_F(RawDiskTest, ExtentsFollowTheFileHoles)
{
    const auto p = path("a.img");
    constexpr uint64_t mib = 1 << 20;
    ASSERT_TRUE(create_raw(p, 8 * mib));
    auto disk = std::move(*open_raw(p, false));
    ASSERT_TRUE(disk->write(mib, pattern(64 << 10, 1)));
    ASSERT_TRUE(disk->write(4 * mib, pattern(mib, 2)));
    ASSERT_TRUE(disk->discard(4 * mib + (256 << 10), 128 << 10));
    ASSERT_TRUE(disk->flush());
    auto all = disk->extents(0, 8 * mib);
    ASSERT_TRUE(all) << all.error().message();
    if (all->size() == 1 && all->front().kind == ExtentKind::Data)
        GTEST_SKIP() << "this filesystem reports no holes";
    const std::vector<Extent> expected = {
        { 0, mib, ExtentKind::Zero },
        { mib, 64 << 10, ExtentKind::Data },
        { mib + (64 << 10), 3 * mib - (64 << 10), ExtentKind::Zero },
        { 4 * mib, 256 << 10, ExtentKind::Data },
        { 4 * mib + (256 << 10), 128 << 10, ExtentKind::Zero },
        { 4 * mib + (384 << 10), 640 << 10, ExtentKind::Data },
        { 5 * mib, 3 * mib, ExtentKind::Zero },
    };
    EXPECT_EQ(*all, expected);
    // A range starting and ending inside extents is clipped to it exactly.
    const std::vector<Extent> part
        = { { mib + (32 << 10), 32 << 10, ExtentKind::Data }, { mib + (64 << 10), 512, ExtentKind::Zero } };
    EXPECT_EQ(*disk->extents(mib + (32 << 10), (32 << 10) + 512), part);
    EXPECT_EQ(*disk->extents(6 * mib, 4096), (std::vector<Extent> { { 6 * mib, 4096, ExtentKind::Zero } }));
    EXPECT_TRUE(disk->extents(0, 0)->empty());
    EXPECT_FALSE(disk->extents(100, 512));
    EXPECT_FALSE(disk->extents(8 * mib - 512, 1024));
}

TEST_F(RawDiskTest, ResizeGrowsSparseAndShrinks)
{
    const auto p = path("a.img");
    ASSERT_TRUE(create_raw(p, 1 << 20));
    const auto tail = pattern(4096, 3);
    {
        auto disk = std::move(*open_raw(p, false));
        ASSERT_TRUE(disk->write((1 << 20) - 4096, tail));
        auto grown = disk->resize(16 << 20);
        ASSERT_TRUE(grown) << grown.error().message();
        EXPECT_EQ(disk->size(), 16u << 20);
        EXPECT_EQ(disk->info().file_size, 16u << 20);
        std::vector<uint8_t> back(4096);
        ASSERT_TRUE(disk->read((1 << 20) - 4096, back));
        EXPECT_EQ(back, tail);
        std::vector<uint8_t> fresh(15 << 20, 0xff);
        ASSERT_TRUE(disk->read(1 << 20, fresh));
        EXPECT_TRUE(std::all_of(fresh.begin(), fresh.end(), [](uint8_t b) { return b == 0; }));
        ASSERT_TRUE(disk->write((16 << 20) - 512, std::span(tail).first(512)));
        struct stat st { };
        ASSERT_EQ(::stat(p.c_str(), &st), 0);
        EXPECT_EQ(st.st_size, 16 << 20);
        EXPECT_LT(st.st_blocks * 512, 1 << 20) << "growing must stay sparse";
        // Shrinking drops the tail: what is past the new end is gone, and stays gone when grown again.
        ASSERT_TRUE(disk->resize((1 << 20) - 2048));
        EXPECT_EQ(disk->size(), (1u << 20) - 2048);
        EXPECT_FALSE(disk->read((1 << 20) - 2048, std::span(back).first(512)));
        ASSERT_TRUE(disk->resize(1 << 20));
        ASSERT_TRUE(disk->read((1 << 20) - 4096, back));
        EXPECT_TRUE(std::equal(back.begin(), back.begin() + 2048, tail.begin()));
        EXPECT_TRUE(std::all_of(back.begin() + 2048, back.end(), [](uint8_t b) { return b == 0; }));
        EXPECT_FALSE(disk->resize(0));
        EXPECT_FALSE(disk->resize(1000));
        EXPECT_EQ(disk->size(), 1u << 20);
    }
    auto reopened = std::move(*open_raw(p, true));
    EXPECT_EQ(reopened->size(), 1u << 20);
    auto refused = reopened->resize(2 << 20);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("read-only"), std::string::npos);
}

TEST_F(RawDiskTest, RefusesBadFiles)
{
    EXPECT_FALSE(open_raw(path("missing.img"), true));
    const auto p = path("odd.img");
    FILE* f = std::fopen(p.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("not a multiple of 512", f);
    std::fclose(f);
    auto r = open_raw(p, true);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("multiple of 512"), std::string::npos);
    EXPECT_FALSE(open_raw(m_dir, true));
}

} // namespace
} // namespace vmgen::vm::disk
