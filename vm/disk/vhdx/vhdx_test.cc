// Tests against images made and checked by qemu-img/qemu-io (qemu-utils): what qemu-io wrote must read back
// byte for byte as `qemu-img convert -O raw` sees it; corrupted structures must be refused without writes.
#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"
#include "vm/disk/vhdx/vhdx_test_fixture.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace vmgen::vm::disk {
namespace {

using namespace vmgen::protocols::disk;
using namespace vhdx_testing;

const std::string sample_writes = "-c 'write -P 0xab 0 1M' -c 'write -P 0x11 5M 8k' -c 'write -P 0x5c 9215k 2k' "
                                  "-c 'write -P 0xee 64508k 4k'";

struct Shape {
    const char* subformat;
    const char* block_size;
    uint32_t block_bytes;
};

class VhdxShapeTest : public VhdxTest, public ::testing::WithParamInterface<Shape> {};

TEST_P(VhdxShapeTest, ReadsWhatQemuWrote)
{
    Shape s = GetParam();
    std::string p = create(std::string("subformat=") + s.subformat + ",block_size=" + s.block_size);
    qemu_write(p, sample_writes);
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    const DiskInfo& info = (*d)->info();
    EXPECT_EQ(info.format, DiskFormat::Vhdx);
    bool fixed = std::string(s.subformat) == "fixed";
    EXPECT_EQ(info.type, fixed ? DiskType::Fixed : DiskType::Dynamic);
    EXPECT_EQ(info.virtual_size, 64u << 20);
    EXPECT_EQ(info.logical_sector_size, 512u);
    EXPECT_EQ(info.block_size, fixed ? 0u : s.block_bytes);
    EXPECT_EQ(info.identifier.size(), 36u);
    EXPECT_TRUE((*d)->read_only());
    auto got = read_all(**d);
    EXPECT_TRUE(got == qemu_raw(p));
    EXPECT_EQ(got[5 << 20], 0x11);
    EXPECT_EQ(got[(64508u << 10) + 4095], 0xee);
    EXPECT_EQ(got[(64508u << 10) + 4096], 0x00);
    std::vector<uint8_t> past(512);
    EXPECT_FALSE((*d)->read(64u << 20, past));
    std::vector<uint8_t> odd(100);
    EXPECT_FALSE((*d)->read(0, odd));
    EXPECT_FALSE((*d)->write(0, std::span<const uint8_t>(past)));
}

INSTANTIATE_TEST_SUITE_P(Shapes, VhdxShapeTest,
                         ::testing::Values(Shape{"dynamic", "1M", 1u << 20}, Shape{"dynamic", "8M", 8u << 20},
                                           Shape{"fixed", "1M", 1u << 20}, Shape{"fixed", "32M", 32u << 20}),
                         [](const auto& param_info) {
                             return std::string(param_info.param.subformat) + "_" + param_info.param.block_size;
                         });

TEST_F(VhdxTest, Reads4096ByteSectorImages)
{
    // qemu neither makes nor opens 4 KiB-sector images. Payload layout does not depend on the sector size (and
    // with 32 blocks the BAT has no sector bitmap entries either way), so let qemu write a 512-byte-sector
    // image, take its raw contents, then patch the sector size items (metadata carries no checksum).
    std::string p = create("subformat=dynamic,block_size=2M");
    qemu_write(p, "-c 'write -P 0x42 4096 12k' -c 'write -P 0x77 3M 1M' -c 'write -P 0x99 64508k 4k'");
    auto expected = qemu_raw(p);
    write_obj<uint32_t>(p, metadata_item(p, vhdx_logical_sector_size_guid), 4096);
    write_obj<uint32_t>(p, metadata_item(p, vhdx_physical_sector_size_guid), 4096);
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ((*d)->info().logical_sector_size, 4096u);
    EXPECT_EQ((*d)->info().physical_sector_size, 4096u);
    EXPECT_TRUE(read_all(**d) == expected);
    std::vector<uint8_t> sector(512);
    EXPECT_FALSE((*d)->read(512, sector));
}

TEST_F(VhdxTest, SkipsSectorBitmapEntriesInTheBat)
{
    // 512-byte sectors, 1 MiB blocks: chunk ratio 4096, so the BAT has a sector bitmap entry after block 4095.
    std::string p = create("subformat=dynamic,block_size=1M", "5G");
    qemu_write(p, "-c 'write -P 0x61 4095M 1M' -c 'write -P 0x62 4096M 1M' -c 'write -P 0x63 5119M 1M'");
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    std::vector<uint8_t> buf(3 << 20);
    ASSERT_TRUE((*d)->read(4094ULL << 20, buf));
    for (size_t i = 0; i < buf.size(); i += 4096)
        ASSERT_EQ(buf[i], i < (1u << 20) ? 0 : i < (2u << 20) ? 0x61 : 0x62) << i;
    std::vector<uint8_t> last(1 << 20);
    ASSERT_TRUE((*d)->read(5119ULL << 20, last));
    EXPECT_EQ(last.front(), 0x63);
    EXPECT_EQ(last.back(), 0x63);
}

TEST_F(VhdxTest, RefusesBadFileIdentifier)
{
    std::string p = create("subformat=dynamic");
    write_bytes(p, 0, "vhdxfilf", 8);
    expect_refused(p, "vhdxfile");
}

TEST_F(VhdxTest, FallsBackToTheOtherHeaderAndRefusesWhenBothAreBad)
{
    std::string p = create("subformat=dynamic");
    qemu_write(p, "-c 'write -P 0xab 0 4k'");
    uint64_t cur = current_header(p);
    uint8_t junk = 0x5a;
    write_bytes(p, cur + 200, &junk, 1); // checksum now wrong: the other header takes over
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_TRUE(read_all(**d) == qemu_raw(p));
    uint64_t other = cur == vhdx_header1_offset ? vhdx_header2_offset : vhdx_header1_offset;
    write_bytes(p, other, "heaD", 4);
    expect_refused(p, "no valid header");
}

TEST_F(VhdxTest, RefusesUnsupportedHeaderVersion)
{
    std::string p = create("subformat=dynamic");
    for (uint64_t off : {vhdx_header1_offset, vhdx_header2_offset}) {
        write_obj<uint16_t>(p, off + offsetof(VhdxHeader, version), 2);
        fix_checksum(p, off, 4096);
    }
    expect_refused(p, "unsupported version 2");
}

TEST_F(VhdxTest, RefusesLogOutsideTheFile)
{
    std::string p = create("subformat=dynamic");
    for (uint64_t off : {vhdx_header1_offset, vhdx_header2_offset}) {
        write_obj<uint64_t>(p, off + offsetof(VhdxHeader, log_offset), 1ULL << 40);
        fix_checksum(p, off, 4096);
    }
    expect_refused(p, "past the end of the file");
}

TEST_F(VhdxTest, RegionTables)
{
    std::string p = create("subformat=dynamic");
    write_bytes(p, vhdx_region_table1_offset + 100, "x", 1);
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message(); // table 2 is used
    write_bytes(p, vhdx_region_table2_offset + 100, "x", 1);
    expect_refused(p, "no valid region table");
}

TEST_F(VhdxTest, RefusesUnknownRequiredRegion)
{
    std::string p = create("subformat=dynamic");
    for (uint64_t t : {vhdx_region_table1_offset, vhdx_region_table2_offset}) {
        auto rh = read_obj<VhdxRegionTableHeader>(p, t);
        VhdxRegionTableEntry e{{0x12345678, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}}, 32 << 20, 1 << 20, 1};
        write_obj(p, t + 16 + rh.entry_count * 32, e);
        rh.entry_count += 1;
        write_obj(p, t, rh);
        fix_checksum(p, t, vhdx_region_table_size);
    }
    expect_refused(p, "unknown required region");
}

TEST_F(VhdxTest, RefusesBadMetadata)
{
    struct Case {
        const VhdxGuid* item;
        uint32_t value;
        const char* what;
    };
    const Case cases[] = {
        {&vhdx_file_parameters_guid, 3u << 20, "block size"},
        {&vhdx_file_parameters_guid, 512u << 20, "block size"},
        {&vhdx_logical_sector_size_guid, 1000, "logical sector size"},
        {&vhdx_physical_sector_size_guid, 0, "physical sector size"},
        {&vhdx_virtual_disk_size_guid, (64u << 20) + 100, "virtual disk size"},
        {&vhdx_virtual_disk_size_guid, 0, "virtual disk size"},
    };
    for (const Case& c : cases) {
        std::string p = create("subformat=dynamic");
        uint64_t off = metadata_item(p, *c.item);
        if (*c.item == vhdx_virtual_disk_size_guid)
            write_obj<uint64_t>(p, off, c.value);
        else
            write_obj<uint32_t>(p, off, c.value);
        SCOPED_TRACE(c.what);
        expect_refused(p, c.what);
        std::remove(p.c_str());
    }
}

TEST_F(VhdxTest, RefusesBadMetadataTable)
{
    std::string p = create("subformat=dynamic");
    uint64_t params = metadata_item(p, vhdx_file_parameters_guid);
    uint64_t table = params - params % vhdx_mib;
    write_bytes(p, table, "metadatX", 8);
    expect_refused(p, "metadata table signature");
}

TEST_F(VhdxTest, RefusesDifferencingFlag)
{
    std::string p = create("subformat=dynamic");
    uint64_t off = metadata_item(p, vhdx_file_parameters_guid);
    write_obj<uint32_t>(p, off + 4, vhdx_params_has_parent);
    expect_refused(p, "differencing");
}

TEST_F(VhdxTest, RefusesBadBatEntries)
{
    struct Case {
        uint64_t entry; // written as BAT entry 1
        const char* what;
    };
    std::string p0 = create("subformat=dynamic,block_size=1M");
    uint64_t bat = bat_offset(p0);
    const Case cases[] = {
        {5, "invalid payload block state"},
        {(1ULL << 40) | vhdx_payload_fully_present, "outside the file"},
        {bat | vhdx_payload_fully_present, "overlaps the BAT"},
        {0x100 | vhdx_payload_fully_present, "reserved bits"},
        {vhdx_payload_partially_present, "invalid payload block state"},
    };
    for (size_t i = 0; i < std::size(cases); ++i) {
        std::string p = create("subformat=dynamic,block_size=1M");
        write_obj<uint64_t>(p, bat + 8, cases[i].entry);
        SCOPED_TRACE(cases[i].what);
        expect_refused(p, cases[i].what);
        std::remove(p.c_str());
    }
    // Two blocks at the same place.
    std::string p = create("subformat=dynamic,block_size=1M");
    qemu_write(p, "-c 'write -P 1 0 4k'");
    auto first = read_obj<uint64_t>(p, bat);
    ASSERT_EQ(first & 7, vhdx_payload_fully_present);
    write_obj<uint64_t>(p, bat + 16, first);
    expect_refused(p, "overlap");
}

TEST_F(VhdxTest, RefusesTruncatedFiles)
{
    std::string p = create("subformat=fixed");
    ASSERT_EQ(::truncate(p.c_str(), 512 << 10), 0);
    expect_refused(p, "too small");
    std::string q = path("q.vhdx");
    sh("qemu-img create -f vhdx -o subformat=fixed,block_state_zero=off " + q + " 64M");
    ASSERT_EQ(::truncate(q.c_str(), 40 << 20), 0);
    expect_refused(q, "outside the file");
}

TEST_F(VhdxTest, WritesIntoAllocatedBlocks)
{
    std::string p = create("subformat=fixed,block_size=1M");
    qemu_write(p, "-c 'write -P 0x33 0 64M'");
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        std::vector<uint8_t> data((1 << 20) + 8192, 0xc4);
        ASSERT_TRUE((*d)->write((3 << 20) - 4096, data));
        ASSERT_TRUE((*d)->discard(20 << 20, 4096));
        ASSERT_TRUE((*d)->flush());
        std::vector<uint8_t> back(data.size());
        ASSERT_TRUE((*d)->read((3 << 20) - 4096, back));
        EXPECT_TRUE(back == data);
    }
    sh("qemu-img check -f vhdx " + p);
    auto raw = qemu_raw(p);
    EXPECT_EQ(raw[(3 << 20) - 4097], 0x33);
    EXPECT_EQ(raw[(3 << 20) - 4096], 0xc4);
    EXPECT_EQ(raw[(4 << 20) + 4095], 0xc4);
    EXPECT_EQ(raw[(4 << 20) + 4096], 0x33);
    EXPECT_EQ(raw[20 << 20], 0x00);
    EXPECT_EQ(raw[(20 << 20) + 4096], 0x33);
}

TEST_F(VhdxTest, NowaitPathsTouchOnlyAllocatedBlocksAndNoMetadata)
{
    std::string p = create("subformat=dynamic,block_size=1M", "8M");
    qemu_write(p, "-c 'write -P 0x5e 0 1M'"); // block 0 allocated, the rest not
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        BlockDevice& disk = **d;
        std::vector<uint8_t> back(64 * 1024);
        auto got = disk.read_nowait(4096, back);
        ASSERT_TRUE(got) << got.error().message();
        ASSERT_TRUE(*got) << "just written by qemu-io: in the page cache";
        EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0x5e; }));
        got = disk.read_nowait(3 << 20, back); // unallocated: zeroes, no I/O at all
        ASSERT_TRUE(got && *got);
        EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0; }));

        std::vector<uint8_t> data(8192, 0xa7);
        got = disk.write_nowait(8192, data);
        ASSERT_TRUE(got);
        EXPECT_FALSE(*got) << "the first write of an open updates the header's write GUIDs";
        ASSERT_TRUE(disk.write(0, std::span(data).first(4096)));
        got = disk.write_nowait(8192, data);
        ASSERT_TRUE(got);
        EXPECT_TRUE(*got) << "a fully present block takes the write without metadata";
        got = disk.write_nowait((2 << 20) + 4096, data);
        ASSERT_TRUE(got);
        EXPECT_FALSE(*got) << "allocating a block is a metadata update through the log";
        got = disk.write_nowait((1 << 20) - 4096, data); // the second half lands in unallocated block 1
        ASSERT_TRUE(got);
        EXPECT_FALSE(*got);
        auto extents = disk.extents(1 << 20, 7 << 20);
        ASSERT_TRUE(extents);
        ASSERT_EQ(extents->size(), 1u);
        EXPECT_EQ(extents->front().kind, ExtentKind::Zero) << "a declined nowait write allocated a block";
        EXPECT_FALSE(disk.write_nowait(100, data)) << "unaligned";
        ASSERT_TRUE(disk.close());
    }
    sh("qemu-img check -f vhdx " + p);
    auto raw = qemu_raw(p);
    EXPECT_EQ(raw[0], 0xa7);
    EXPECT_EQ(raw[4096], 0x5e);
    EXPECT_EQ(raw[8192], 0xa7);
    EXPECT_EQ(raw[16383], 0xa7);
    EXPECT_EQ(raw[16384], 0x5e);
    EXPECT_EQ(raw[(2 << 20) + 4096], 0x00);
}

TEST_F(VhdxTest, InPlaceWritesRunConcurrentlyWithAllocationsAndFlushes)
{
    // Writes into fully present blocks share the image lock; allocating writes and flushes take it alone. Four
    // threads mixing both must leave exactly their bytes and a consistent image.
    std::string p = create("subformat=dynamic,block_size=1M", "16M");
    qemu_write(p, "-c 'write -P 0x11 0 8M'"); // blocks 0-7 allocated, 8-15 not
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        BlockDevice& disk = **d;
        std::vector<std::thread> threads;
        std::atomic<int> failures {0};
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                std::vector<uint8_t> data(64 * 1024, static_cast<uint8_t>(0xa0 + t));
                for (int i = 0; i < 16; ++i) {
                    // Thread t owns 64 KiB slots t, t+4, ... of every 1 MiB block: allocated and unallocated ones.
                    uint64_t block = static_cast<uint64_t>((i + t) % 16);
                    uint64_t at = block * (1 << 20) + static_cast<uint64_t>(t + 4 * (i % 4)) * data.size();
                    if (!disk.write(at, data))
                        ++failures;
                    if (i % 5 == 4 && !disk.flush())
                        ++failures;
                }
            });
        }
        for (auto& thread : threads)
            thread.join();
        EXPECT_EQ(failures.load(), 0);
        ASSERT_TRUE(disk.close());
    }
    sh("qemu-img check -f vhdx " + p);
    auto raw = qemu_raw(p);
    for (int t = 0; t < 4; ++t) {
        for (int i = 0; i < 16; ++i) {
            uint64_t block = static_cast<uint64_t>((i + t) % 16);
            uint64_t at = block * (1 << 20) + static_cast<uint64_t>(t + 4 * (i % 4)) * 64 * 1024;
            EXPECT_EQ(raw[at], 0xa0 + t) << "thread " << t << " write " << i;
            EXPECT_EQ(raw[at + 64 * 1024 - 1], 0xa0 + t) << "thread " << t << " write " << i;
        }
    }
    EXPECT_EQ(raw[(1 << 20) - 1], 0x11) << "a byte no thread wrote in an allocated block";
    EXPECT_EQ(raw[(9 << 20) - 1], 0x00) << "a byte no thread wrote in a block allocated by the test";
}

TEST_F(VhdxTest, ReplaysADirtyLog)
{
    // qemu writes BAT updates through the log and empties the log afterwards, leaving the entry in place.
    // Re-arm it: put its log GUID back into the current header and undo what it wrote; opening read-write
    // must replay it, a read-only open must refuse.
    std::string p = create("subformat=dynamic,block_size=1M,log_size=1M");
    qemu_write(p, "-c 'write -P 0xab 2M 64k'");
    auto expected = qemu_raw(p);
    uint64_t hdr = current_header(p);
    auto h = read_obj<VhdxHeader>(p, hdr);
    auto entry = read_obj<VhdxLogEntryHeader>(p, h.log_offset);
    ASSERT_EQ(entry.signature, vhdx_log_entry_signature);
    ASSERT_GE(entry.descriptor_count, 1u);
    auto desc = read_obj<VhdxLogDataDescriptor>(p, h.log_offset + sizeof(VhdxLogEntryHeader));
    ASSERT_EQ(desc.signature, vhdx_log_desc_signature);
    std::vector<uint8_t> zero(4096);
    write_bytes(p, desc.file_offset, zero.data(), zero.size());
    write_obj(p, hdr + offsetof(VhdxHeader, log_guid), entry.log_guid);
    fix_checksum(p, hdr, 4096);
    {
        auto d = open_vhdx(p, true);
        ASSERT_FALSE(d);
        EXPECT_NE(d.error().message().find("log"), std::string::npos) << d.error().message();
    }
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        EXPECT_TRUE(read_all(**d) == expected);
    }
    auto after = read_obj<VhdxHeader>(p, current_header(p));
    EXPECT_TRUE(after.log_guid.is_zero());
    sh("qemu-img check -f vhdx " + p);
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_TRUE(read_all(**d) == expected);
}

TEST_F(VhdxTest, RefusesACorruptLogWithoutWriting)
{
    std::string p = create("subformat=dynamic,block_size=1M,log_size=1M");
    qemu_write(p, "-c 'write -P 0xab 2M 64k'");
    uint64_t hdr = current_header(p);
    auto h = read_obj<VhdxHeader>(p, hdr);
    auto entry = read_obj<VhdxLogEntryHeader>(p, h.log_offset);
    // The entry writes into the header section (a header: only the region tables may be logged): a valid checksum
    // but a hostile target.
    auto desc = read_obj<VhdxLogDataDescriptor>(p, h.log_offset + sizeof(VhdxLogEntryHeader));
    desc.file_offset = vhdx_header2_offset;
    write_obj(p, h.log_offset + sizeof(VhdxLogEntryHeader), desc);
    fix_checksum(p, h.log_offset, entry.entry_length);
    write_obj(p, hdr + offsetof(VhdxHeader, log_guid), entry.log_guid);
    fix_checksum(p, hdr, 4096);
    expect_refused(p, "header section", "the log has entries to replay");
}

// Applies the same writes to an open device and to a byte vector (the reference).
struct Writes {
    uint64_t offset;
    uint64_t length;
    uint8_t pattern;
};
const Writes some_writes[] = {
    {0, 4096, 0xa1},                 // first sector of block 0
    {(1 << 20) - 4096, 8192, 0xb2},  // across the 1 MiB block boundary
    {(17 << 20) + 512 * 8, 4096 * 3, 0xc3},
    {(64 << 20) - 4096, 4096, 0xd4}, // last sector
    {8192, 4096, 0xe5},              // into an allocated block again
};

void apply(BlockDevice& d, std::vector<uint8_t>& reference)
{
    for (const Writes& w : some_writes) {
        std::vector<uint8_t> data(w.length, w.pattern);
        auto r = d.write(w.offset, data);
        ASSERT_TRUE(r) << r.error().message();
        std::fill(reference.begin() + static_cast<long>(w.offset),
                  reference.begin() + static_cast<long>(w.offset + w.length), w.pattern);
    }
    ASSERT_TRUE(d.flush());
}

struct CreateShape {
    DiskType type;
    uint32_t block_size;
    uint32_t sector;
};

class VhdxCreateTest : public VhdxTest, public ::testing::WithParamInterface<CreateShape> {};

TEST_P(VhdxCreateTest, CreatesWritesAndReadsBack)
{
    CreateShape c = GetParam();
    std::string p = path("new.vhdx");
    auto r = create_vhdx(p, 64 << 20, c.type, c.block_size, c.sector);
    ASSERT_TRUE(r) << r.error().message();
    std::vector<uint8_t> reference(64 << 20);
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        EXPECT_EQ((*d)->info().type, c.type);
        EXPECT_EQ((*d)->info().logical_sector_size, c.sector);
        EXPECT_EQ((*d)->info().block_size, c.type == DiskType::Fixed ? 0u : (c.block_size ? c.block_size : 32u << 20));
        EXPECT_TRUE(read_all(**d) == reference);
        apply(**d, reference);
        EXPECT_TRUE(read_all(**d) == reference);
    }
    auto d = open_vhdx(p, true);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_TRUE(read_all(**d) == reference);
    if (c.sector == 512) { // qemu opens 512-byte-sector images only
        sh("qemu-img check -f vhdx " + p);
        std::string raw = path("ref.raw");
        std::ofstream(raw, std::ios::binary).write(reinterpret_cast<const char*>(reference.data()),
                                                    static_cast<std::streamsize>(reference.size()));
        sh("qemu-img compare -f vhdx -F raw " + p + " " + raw);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, VhdxCreateTest,
                         ::testing::Values(CreateShape{DiskType::Dynamic, 1 << 20, 512},
                                           CreateShape{DiskType::Dynamic, 0, 512},
                                           CreateShape{DiskType::Fixed, 1 << 20, 512},
                                           CreateShape{DiskType::Fixed, 8 << 20, 512},
                                           CreateShape{DiskType::Dynamic, 1 << 20, 4096},
                                           CreateShape{DiskType::Fixed, 2 << 20, 4096}),
                         [](const auto& param_info) {
                             const CreateShape& c = param_info.param;
                             return fmt::format("{}_{}K_{}", c.type == DiskType::Fixed ? "fixed" : "dynamic",
                                                c.block_size >> 10, c.sector);
                         });

TEST_F(VhdxTest, CreateRefusesBadParameters)
{
    std::string p = path("bad.vhdx");
    EXPECT_FALSE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 3 << 20, 512));
    EXPECT_FALSE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 1 << 20, 1024));
    EXPECT_FALSE(create_vhdx(p, (64 << 20) + 512, DiskType::Dynamic, 1 << 20, 4096));
    EXPECT_FALSE(create_vhdx(p, 0, DiskType::Dynamic, 1 << 20, 512));
    EXPECT_FALSE(create_vhdx(p, 64 << 20, DiskType::Differencing, 1 << 20, 512));
    EXPECT_NE(::access(p.c_str(), F_OK), 0);
    ASSERT_TRUE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 1 << 20, 512));
    EXPECT_FALSE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 1 << 20, 512)); // exists
}

TEST_F(VhdxTest, AllocatesBlocksInQemuImages)
{
    for (const char* sub : {"dynamic", "fixed"}) {
        SCOPED_TRACE(sub);
        std::string p = create(std::string("subformat=") + sub + ",block_size=1M");
        qemu_write(p, "-c 'write -P 0x17 1M 1M' -c 'write -P 0x18 30M 4k'");
        auto reference = qemu_raw(p);
        {
            auto d = open_vhdx(p, false);
            ASSERT_TRUE(d) << d.error().message();
            apply(**d, reference);
        }
        sh("qemu-img check -f vhdx " + p);
        std::string raw = path("ref.raw");
        std::ofstream(raw, std::ios::binary).write(reinterpret_cast<const char*>(reference.data()),
                                                    static_cast<std::streamsize>(reference.size()));
        sh("qemu-img compare -f vhdx -F raw " + p + " " + raw);
        std::remove(p.c_str());
    }
}

TEST_F(VhdxTest, ReplaysOurOwnLogAfterACrash)
{
    // A copy taken while the image is open (log in use, not emptied) stands for a crash.
    std::string p = path("new.vhdx");
    ASSERT_TRUE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> reference(64 << 20);
    std::string crashed = path("crashed.vhdx");
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        apply(**d, reference);
        sh("cp " + p + " " + crashed);
    }
    auto h = read_obj<VhdxHeader>(crashed, current_header(crashed));
    EXPECT_FALSE(h.log_guid.is_zero());
    // Undo the BAT writes the log holds: replay must bring them back.
    auto bat = bat_offset(crashed);
    std::vector<uint8_t> zero(4096);
    write_bytes(crashed, bat, zero.data(), zero.size());
    EXPECT_FALSE(open_vhdx(crashed, true));
    {
        auto d = open_vhdx(crashed, false);
        ASSERT_TRUE(d) << d.error().message();
        EXPECT_TRUE(read_all(**d) == reference);
    }
    sh("qemu-img check -f vhdx " + crashed);
}

TEST_F(VhdxTest, DiscardZeroesWholeAndPartialBlocks)
{
    std::string p = path("new.vhdx");
    ASSERT_TRUE(create_vhdx(p, 64 << 20, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> reference(64 << 20);
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        std::vector<uint8_t> data(3 << 20, 0x5a);
        ASSERT_TRUE((*d)->write(1 << 20, data));
        std::fill(reference.begin() + (1 << 20), reference.begin() + (4 << 20), 0x5a);
        // All of block 2, the second half of block 1 and the first 4 KiB of block 3.
        ASSERT_TRUE((*d)->discard((3 << 19), (3 << 19) + 4096));
        std::fill(reference.begin() + (3 << 19), reference.begin() + (3 << 20) + 4096, 0);
        EXPECT_TRUE(read_all(**d) == reference);
        // A discarded whole block can be written again (allocated anew).
        std::vector<uint8_t> more(4096, 0x6b);
        ASSERT_TRUE((*d)->write((2 << 20) + 4096, more));
        std::fill(reference.begin() + (2 << 20) + 4096, reference.begin() + (2 << 20) + 8192, 0x6b);
        EXPECT_TRUE(read_all(**d) == reference);
    }
    sh("qemu-img check -f vhdx " + p);
    std::string raw = path("ref.raw");
    std::ofstream(raw, std::ios::binary).write(reinterpret_cast<const char*>(reference.data()),
                                                static_cast<std::streamsize>(reference.size()));
    sh("qemu-img compare -f vhdx -F raw " + p + " " + raw);
}

TEST_F(VhdxTest, LogWrapsAroundAndStillReplays)
{
    // 200 allocations, each flushed, write 200 8 KiB log entries: the 1 MiB log wraps once.
    std::string p = path("new.vhdx");
    ASSERT_TRUE(create_vhdx(p, 256 << 20, DiskType::Dynamic, 1 << 20, 512));
    std::string crashed = path("crashed.vhdx");
    std::vector<uint8_t> data(4096);
    {
        auto d = open_vhdx(p, false);
        ASSERT_TRUE(d) << d.error().message();
        for (uint64_t b = 0; b < 200; ++b) {
            std::fill(data.begin(), data.end(), static_cast<uint8_t>(b + 1));
            ASSERT_TRUE((*d)->write(b << 20, data));
            ASSERT_TRUE((*d)->flush());
        }
        sh("cp " + p + " " + crashed);
    }
    // Undo the last BAT sector write: only the newest log entry restores it.
    auto bat = bat_offset(crashed);
    auto entry = read_obj<uint64_t>(crashed, bat + 199 * 8);
    ASSERT_EQ(entry & 7, vhdx_payload_fully_present);
    write_obj<uint64_t>(crashed, bat + 199 * 8, 0);
    auto d = open_vhdx(crashed, false);
    ASSERT_TRUE(d) << d.error().message();
    for (uint64_t b = 0; b < 201; ++b) {
        ASSERT_TRUE((*d)->read(b << 20, data));
        EXPECT_EQ(data[0], b < 200 ? b + 1 : 0) << b;
        EXPECT_EQ(data[4095], b < 200 ? b + 1 : 0) << b;
    }
}

TEST(VhdxCrc, KnownVector)
{
    const char* s = "123456789";
    EXPECT_EQ(vhdx_crc32c(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s), 9)), 0xE3069283u);
}

} // namespace
} // namespace vmgen::vm::disk
