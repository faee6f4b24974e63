// The LUNs over real images: raw, VHD and VHDX files (512 and 4096-byte sectors) written and read through SCSI
// commands and checked through a fresh open of the file; an ISO 9660 image made by xorriso read through the DVD
// LUN the way a guest mounts it (volume descriptor, root directory, file extents).
#include "vm/disk/disk_ops.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace vmgen::vm::scsi {
namespace {

using namespace testing;
namespace fs = std::filesystem;

class ScsiImagesTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vmgen_scsi_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { fs::remove_all(m_dir); }
    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    std::string m_dir;
};

struct ImageCase {
    const char* name;
    disk::DiskType type;
    uint32_t sector;
};

std::vector<uint8_t> read_direct(disk::BlockDevice& disk, uint64_t offset, size_t length)
{
    std::vector<uint8_t> out(length);
    EXPECT_TRUE(disk.read(offset, out));
    return out;
}

TEST_F(ScsiImagesTest, DisksReadAndWriteThroughScsi)
{
    const ImageCase cases[] = {
        { "a.img", disk::DiskType::Dynamic, 512 },
        { "fixed.vhd", disk::DiskType::Fixed, 512 },
        { "dynamic.vhd", disk::DiskType::Dynamic, 512 },
        { "fixed.vhdx", disk::DiskType::Fixed, 512 },
        { "d512.vhdx", disk::DiskType::Dynamic, 512 },
        { "d4k.vhdx", disk::DiskType::Dynamic, 4096 },
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string file = path(c.name);
        disk::CreateOptions options;
        options.type = c.type;
        options.size = 64 << 20;
        options.logical_sector_size = c.sector;
        ASSERT_TRUE(disk::create_disk(file, options));
        auto opened = disk::open_disk(file, false);
        ASSERT_TRUE(opened) << opened.error().message();
        auto created = ScsiDisk::create(std::move(*opened), {});
        ASSERT_TRUE(created) << created.error().message();
        auto& lun = **created;

        auto reply = data_in(lun, read_capacity_16(32), 32);
        ASSERT_TRUE(reply.good());
        EXPECT_EQ(be32(reply.data, 8), c.sector);
        const uint64_t blocks = be64(reply.data, 0) + 1;
        EXPECT_EQ(blocks * c.sector, options.size);

        // A fresh image reads as zeroes.
        reply = data_in(lun, rw10(op::read_10, 100, 4), 4 * c.sector);
        EXPECT_EQ(reply.data, std::vector<uint8_t>(4 * c.sector, 0));

        // Writes of every size at the start, the middle (across a 2 MiB VHDX block boundary) and the end, the
        // buffers scattered across odd segments.
        const uint64_t boundary = (2 << 20) / c.sector;
        const auto first = pattern(0, 8 * c.sector, 1);
        ASSERT_TRUE(data_out(lun, rw6(op::write_6, 0, 8), first, { 100, 8 * c.sector - 100 }).good());
        const auto middle = pattern(0, 16 * c.sector, 2);
        ASSERT_TRUE(data_out(lun, rw16(op::write_16, boundary - 8, 16, 0x08), middle,
            { 4096 - 512, 4096, 16 * c.sector - 2 * 4096 + 512 })
                        .good());
        const auto last = pattern(0, 2 * c.sector, 3);
        ASSERT_TRUE(data_out(lun, rw12(op::write_12, static_cast<uint32_t>(blocks - 2), 2), last).good());
        ASSERT_TRUE(no_data(lun, rw10(op::synchronize_cache_10, 0, 0)).good());

        EXPECT_EQ(data_in(lun, rw10(op::read_10, 0, 8), 8 * c.sector).data, first);
        EXPECT_EQ(
            data_in(lun, rw16(op::read_16, boundary - 8, 16), 16 * c.sector, { 7, 16 * c.sector - 7 }).data, middle);
        EXPECT_EQ(data_in(lun, rw12(op::read_12, static_cast<uint32_t>(blocks - 2), 2), 2 * c.sector).data, last);
        EXPECT_EQ(data_in(lun, rw10(op::read_10, static_cast<uint32_t>(blocks - 1), 2), 2 * c.sector).asc(), 0x21);

        // Discard through UNMAP and WRITE SAME: the ranges read as zeroes.
        const auto list = unmap_list({ { boundary - 4, 8 } });
        ASSERT_TRUE(data_out(lun, unmap(static_cast<uint16_t>(list.size())), list).good());
        ASSERT_TRUE(data_out(lun, rw16(op::write_same_16, 0, 2, 0x08), std::vector<uint8_t>(c.sector, 0)).good());
        ASSERT_TRUE(data_out(lun, rw10(op::write_same_10, 4, 2), std::vector<uint8_t>(c.sector, 0x5a)).good());
        auto expected_first = first;
        std::fill(expected_first.begin(), expected_first.begin() + 2 * c.sector, uint8_t { 0 });
        std::fill(expected_first.begin() + 4 * c.sector, expected_first.begin() + 6 * c.sector, uint8_t { 0x5a });
        EXPECT_EQ(data_in(lun, rw10(op::read_10, 0, 8), 8 * c.sector).data, expected_first);
        auto expected_middle = middle;
        std::fill(expected_middle.begin() + 4 * c.sector, expected_middle.begin() + 12 * c.sector, uint8_t { 0 });
        EXPECT_EQ(data_in(lun, rw16(op::read_16, boundary - 8, 16), 16 * c.sector).data, expected_middle);
        ASSERT_TRUE(lun.disk().close());
        created->reset();

        // The file holds it all.
        auto again = disk::open_disk(file, true);
        ASSERT_TRUE(again) << again.error().message();
        EXPECT_EQ(read_direct(**again, 0, 8 * c.sector), expected_first);
        EXPECT_EQ(read_direct(**again, (boundary - 8) * c.sector, 16 * c.sector), expected_middle);
        EXPECT_EQ(read_direct(**again, (blocks - 2) * c.sector, 2 * c.sector), last);
        EXPECT_TRUE(disk::check_disk(file));
    }
}

TEST_F(ScsiImagesTest, ReadOnlyImage)
{
    const std::string file = path("ro.vhdx");
    disk::CreateOptions options;
    options.size = 16 << 20;
    ASSERT_TRUE(disk::create_disk(file, options));
    auto lun = std::move(*ScsiDisk::create(std::move(*disk::open_disk(file, true)), {}));
    EXPECT_TRUE(lun->read_only());
    EXPECT_EQ(data_in(*lun, mode_sense_6(0x3f, 4), 4).data.at(2) & 0x80, 0x80);
    EXPECT_EQ(data_out(*lun, rw10(op::write_10, 0, 1), std::vector<uint8_t>(512)).key(),
        protocols::scsi::sense_key::data_protect);
    EXPECT_TRUE(data_in(*lun, rw10(op::read_10, 0, 1), 512).good());
}

// Reads a little-endian 32-bit field of an ISO 9660 structure.
uint32_t le32(const std::vector<uint8_t>& d, size_t at)
{
    return uint32_t { d.at(at) } | uint32_t { d.at(at + 1) } << 8 | uint32_t { d.at(at + 2) } << 16
        | uint32_t { d.at(at + 3) } << 24;
}

TEST_F(ScsiImagesTest, IsoThroughTheDvdDrive)
{
    if (std::system("command -v xorriso >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "xorriso is not installed (Debian package xorriso)";
    const std::string tree = path("tree");
    fs::create_directories(tree);
    const std::string hello = "hello from the DVD\n";
    std::ofstream(tree + "/hello.txt") << hello;
    std::vector<uint8_t> big(3 * 1024 * 1024 + 123);
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = pattern_byte(i, 0x42);
    std::ofstream(tree + "/big.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(big.data()), static_cast<std::streamsize>(big.size()));
    const std::string iso = path("image.iso");
    const std::string command
        = "xorriso -as mkisofs -quiet -V VMGEN_TEST -o '" + iso + "' '" + tree + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;

    auto medium = disk::open_disk(iso, true);
    ASSERT_TRUE(medium) << medium.error().message();
    const uint64_t iso_size = (*medium)->size();
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(std::move(*medium)));
    EXPECT_EQ(no_data(dvd, test_unit_ready()).asc(), 0x28);
    auto reply = data_in(dvd, read_capacity_10(), 8);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ((be32(reply.data, 0) + 1ull) * 2048, iso_size);

    // The primary volume descriptor at block 16.
    const auto pvd = data_in(dvd, rw10(op::read_10, 16, 1), 2048).data;
    ASSERT_EQ(pvd.size(), 2048u);
    EXPECT_EQ(pvd[0], 1);
    EXPECT_EQ(std::string(pvd.begin() + 1, pvd.begin() + 6), "CD001");
    EXPECT_EQ(std::string(pvd.begin() + 40, pvd.begin() + 50), "VMGEN_TEST");
    const uint32_t root_lba = le32(pvd, 156 + 2);
    const uint32_t root_size = le32(pvd, 156 + 10);

    // The root directory: find both files and read them through READ(10) and READ(12).
    const auto root = data_in(dvd, rw10(op::read_10, root_lba, static_cast<uint16_t>((root_size + 2047) / 2048)),
        (root_size + 2047) / 2048 * 2048)
                          .data;
    ASSERT_FALSE(root.empty());
    std::map<std::string, std::pair<uint32_t, uint32_t>> files;
    for (size_t at = 0; at < root_size && at < root.size() && root[at] != 0; at += root[at]) {
        const std::string name(root.begin() + static_cast<std::ptrdiff_t>(at + 33),
            root.begin() + static_cast<std::ptrdiff_t>(at + 33 + root[at + 32]));
        files[name.substr(0, name.find(';'))] = { le32(root, at + 2), le32(root, at + 10) };
    }
    ASSERT_TRUE(files.count("HELLO.TXT")) << "names: " << files.size();
    ASSERT_TRUE(files.count("BIG.BIN"));
    auto [hello_lba, hello_size] = files["HELLO.TXT"];
    ASSERT_EQ(hello_size, hello.size());
    reply = data_in(dvd, rw10(op::read_10, hello_lba, 1), 2048);
    EXPECT_EQ(std::string(reply.data.begin(), reply.data.begin() + static_cast<std::ptrdiff_t>(hello_size)), hello);

    auto [big_lba, big_size] = files["BIG.BIN"];
    ASSERT_EQ(big_size, big.size());
    const uint32_t big_blocks = (big_size + 2047) / 2048;
    std::vector<size_t> pages(big_blocks * 2048 / 4096, 4096);
    if (big_blocks % 2)
        pages.push_back(2048);
    reply = data_in(dvd, rw12(op::read_12, big_lba, big_blocks), big_blocks * 2048, pages);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(
        std::vector<uint8_t>(reply.data.begin(), reply.data.begin() + static_cast<std::ptrdiff_t>(big_size)), big);

    // The TOC describes the whole image as one data track.
    reply = data_in(dvd, read_toc(false, 0, 0, 100), 100);
    EXPECT_EQ((be32(reply.data, 16) + 0ull) * 2048, iso_size);
}

} // namespace
} // namespace vmgen::vm::scsi
