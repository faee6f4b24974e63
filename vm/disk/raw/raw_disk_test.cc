#include "vm/disk/raw/raw_disk.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

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
