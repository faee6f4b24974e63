// Differencing VHDX images made by create_vhdx_differencing over parents we or qemu made, and extents(). qemu 7.2
// cannot open differencing VHDX, so children are checked by flattening (every byte read and compared with a
// reference built from the same writes) and their parents with qemu-img check and compare (the child's writes
// must leave them untouched). Hostile locators and chains are refused with nothing written.
#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"
#include "vm/disk/vhdx/vhdx_internal.h"
#include "vm/disk/vhdx/vhdx_test_fixture.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace vmgen::vm::disk {
namespace {

using namespace vmgen::protocols::disk;
using namespace vhdx_testing;
namespace fs = std::filesystem;

constexpr uint64_t disk_size = 32 << 20;

// Differs per sector and per seed, so stale or misplaced data shows.
std::vector<uint8_t> pattern(uint64_t offset, uint64_t length, uint8_t seed)
{
    std::vector<uint8_t> out(length);
    for (uint64_t i = 0; i < length; ++i) {
        uint64_t pos = offset + i;
        out[i] = static_cast<uint8_t>(seed * 31 + pos / 512 * 7 + pos % 251 + 1);
    }
    return out;
}

// What a disk must read, and where each sector's bytes come from (for extents()).
struct Model {
    Model(uint64_t size, uint32_t sector, ExtentKind initial)
        : bytes(size), kinds(size / sector, initial), sector_size(sector)
    {
    }
    void set(uint64_t offset, const std::vector<uint8_t>& data, ExtentKind kind)
    {
        std::copy(data.begin(), data.end(), bytes.begin() + static_cast<long>(offset));
        mark(offset, data.size(), kind);
    }
    void mark(uint64_t offset, uint64_t length, ExtentKind kind)
    {
        std::fill(kinds.begin() + static_cast<long>(offset / sector_size),
                  kinds.begin() + static_cast<long>((offset + length) / sector_size), kind);
    }
    [[nodiscard]] std::vector<Extent> extents(uint64_t offset, uint64_t length) const
    {
        std::vector<Extent> out;
        for (uint64_t pos = offset; pos < offset + length; pos += sector_size)
            append_extent(out, {pos, sector_size, kinds[pos / sector_size]});
        return out;
    }
    std::vector<uint8_t> bytes;
    std::vector<ExtentKind> kinds;
    uint64_t sector_size;
};

void write(BlockDevice& d, Model& m, uint64_t offset, uint64_t length, uint8_t seed)
{
    auto data = pattern(offset, length, seed);
    auto r = d.write(offset, data);
    ASSERT_TRUE(r) << r.error().message();
    m.set(offset, data, ExtentKind::Data);
}

void discard(BlockDevice& d, Model& m, uint64_t offset, uint64_t length, ExtentKind kind)
{
    auto r = d.discard(offset, length);
    ASSERT_TRUE(r) << r.error().message();
    m.set(offset, std::vector<uint8_t>(length), kind);
}

std::string text(const std::vector<Extent>& extents)
{
    std::string out;
    for (const Extent& e : extents)
        out += fmt::format("[{:#x}+{:#x} {}] ", e.offset, e.length, static_cast<int>(e.kind));
    return out;
}

void expect_extents(BlockDevice& d, const Model& m, uint64_t offset, uint64_t length)
{
    auto got = d.extents(offset, length);
    ASSERT_TRUE(got) << got.error().message();
    auto want = m.extents(offset, length);
    EXPECT_EQ(*got, want) << "got " << text(*got) << "\nwant " << text(want);
}

std::unique_ptr<BlockDevice> open_ok(const std::string& p, bool read_only)
{
    auto d = open_vhdx(p, read_only);
    EXPECT_TRUE(d) << d.error().message();
    return d ? std::move(*d) : nullptr;
}

class VhdxDifferencingTest : public VhdxTest {
protected:
    // A parent of disk_size bytes holding a pattern in a few places; returns its model (all Data or Zero as the
    // parent's extents say, which the child does not care about).
    Model make_parent(const std::string& p, DiskType type, uint32_t block_size, uint32_t sector)
    {
        auto r = create_vhdx(p, disk_size, type, block_size, sector);
        EXPECT_TRUE(r) << r.error().message();
        Model m(disk_size, sector, ExtentKind::Data);
        auto d = open_ok(p, false);
        if (!d)
            return m;
        write(*d, m, 0, 64 << 10, 1);
        write(*d, m, (3 << 20) - 4096, 12 << 10, 2);
        write(*d, m, 10 << 20, 2 << 20, 3);
        write(*d, m, 31 << 20, 1 << 20, 4);
        EXPECT_TRUE(d->close());
        return m;
    }

    void make_child(const std::string& child, const std::string& parent)
    {
        auto r = create_vhdx_differencing(child, parent);
        ASSERT_TRUE(r) << r.error().message();
    }

    static std::string linkage_of(const std::string& p)
    {
        return "{" + vhdx_detail::guid_text(read_obj<VhdxHeader>(p, current_header(p)).data_write_guid) + "}";
    }

    // Puts `item` in place of the image's parent locator item (the metadata region has room after it).
    static void replace_locator(const std::string& p, const std::vector<uint8_t>& item)
    {
        uint64_t entry = metadata_entry(p, vhdx_parent_locator_guid);
        auto e = read_obj<VhdxMetadataTableEntry>(p, entry);
        write_bytes(p, entry - entry % vhdx_mib + e.offset, item.data(), item.size());
        e.length = static_cast<uint32_t>(item.size());
        write_obj(p, entry, e);
    }

    static std::vector<uint8_t> locator(const std::vector<std::pair<std::string, std::string>>& entries)
    {
        auto r = vhdx_detail::build_parent_locator(entries);
        EXPECT_TRUE(r) << r.error().message();
        return r ? *r : std::vector<uint8_t>{};
    }

    static std::string error_of(const std::string& p, bool read_only = true)
    {
        auto d = open_vhdx(p, read_only);
        EXPECT_FALSE(d) << p << " opened";
        return d ? std::string() : d.error().message();
    }
};

struct DiffShape {
    DiskType parent_type;
    uint32_t sector;
    uint32_t parent_block;
    uint32_t child_block; // expected
};

class VhdxDifferencingShapeTest : public VhdxDifferencingTest, public ::testing::WithParamInterface<DiffShape> {};

TEST_P(VhdxDifferencingShapeTest, ChildReadsParentAndKeepsItsWritesApart)
{
    const DiffShape c = GetParam();
    const uint64_t s = c.sector;
    const uint64_t b = c.child_block;
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    Model parent_model = make_parent(parent, c.parent_type, c.parent_block, c.sector);
    sh("cp " + parent + " " + path("parent-before.vhdx"));
    auto parent_bytes = whole_file(parent);
    make_child(child, parent);

    Model m(disk_size, c.sector, ExtentKind::Parent);
    m.bytes = parent_model.bytes;
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        const DiskInfo& info = d->info();
        EXPECT_EQ(info.type, DiskType::Differencing);
        EXPECT_EQ(info.virtual_size, disk_size);
        EXPECT_EQ(info.logical_sector_size, c.sector);
        EXPECT_EQ(info.block_size, c.child_block);
        EXPECT_EQ(info.parent_path, parent);
        auto p = open_ok(parent, true);
        ASSERT_TRUE(p);
        EXPECT_EQ(info.identifier, p->info().identifier);
        EXPECT_EQ(info.physical_sector_size, p->info().physical_sector_size);
        EXPECT_TRUE(read_all(*d) == m.bytes);
        expect_extents(*d, m, 0, disk_size);

        write(*d, m, 3 * s, 5 * s, 0x21);          // inside block 0, over the parent's data
        write(*d, m, b + 7 * s, s, 0x22);           // one sector of block 1
        write(*d, m, 2 * b, b, 0x23);               // all of block 2
        write(*d, m, 3 * b - 2 * s, 4 * s, 0x24);   // across the block 2/3 boundary
        write(*d, m, 4 * s, 2 * s, 0x25);           // again inside block 0 (partially present)
        write(*d, m, disk_size - s, s, 0x26);       // the last sector
        write(*d, m, 5 * b, b, 0x27);               // all of block 5, then a part of it again
        write(*d, m, 5 * b + s, s, 0x28);
        write(*d, m, 7 * b + s, s, 0x29);           // block 7 partially present, then all of it
        write(*d, m, 7 * b, b, 0x2a);
        write(*d, m, 9 * b - 3 * s, b + 6 * s, 0x2b); // three blocks: end, all, start
        EXPECT_TRUE(read_all(*d) == m.bytes);
        expect_extents(*d, m, 0, disk_size);
        expect_extents(*d, m, 2 * s, b + 8 * s);
        ASSERT_TRUE(d->close());
    }
    // The blocks' states ([MS-VHDX] 2.5.1.1; one chunk: BAT index = block, the sector bitmap entry after them).
    const uint64_t bat = bat_offset(child);
    auto state = [&](uint64_t block) { return read_obj<uint64_t>(child, bat + block * 8) & 7; };
    EXPECT_EQ(state(0), vhdx_payload_partially_present);
    EXPECT_EQ(state(1), vhdx_payload_partially_present);
    EXPECT_EQ(state(2), vhdx_payload_fully_present);
    EXPECT_EQ(state(3), vhdx_payload_partially_present);
    EXPECT_EQ(state(4), vhdx_payload_not_present);
    EXPECT_EQ(state(5), vhdx_payload_fully_present);
    EXPECT_EQ(state(7), vhdx_payload_fully_present);
    EXPECT_EQ(state(9), vhdx_payload_fully_present);
    const uint64_t chunk_ratio = (uint64_t{1} << 23) * c.sector / b;
    EXPECT_EQ(read_obj<uint64_t>(child, bat + chunk_ratio * 8) & 7, vhdx_sb_present);

    auto d = open_ok(child, true);
    ASSERT_TRUE(d);
    EXPECT_TRUE(read_all(*d) == m.bytes);
    expect_extents(*d, m, 0, disk_size);
    d.reset();

    // The parent is untouched, and what the child reads is the parent's data with the child's writes on top.
    EXPECT_TRUE(whole_file(parent) == parent_bytes);
    if (c.sector == 512) {
        sh("qemu-img check -f vhdx " + parent);
        sh("qemu-img compare -f vhdx -F vhdx " + path("parent-before.vhdx") + " " + parent);
        write_raw(path("parent.raw"), parent_model.bytes);
        sh("qemu-img compare -f vhdx -F raw " + parent + " " + path("parent.raw"));
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, VhdxDifferencingShapeTest,
                         ::testing::Values(DiffShape{DiskType::Dynamic, 512, 2 << 20, 2 << 20},
                                           DiffShape{DiskType::Dynamic, 4096, 1 << 20, 1 << 20},
                                           DiffShape{DiskType::Fixed, 512, 1 << 20, 2 << 20},
                                           DiffShape{DiskType::Fixed, 4096, 8 << 20, 2 << 20}),
                         [](const auto& param_info) {
                             const DiffShape& c = param_info.param;
                             return fmt::format("{}_{}K_{}", c.parent_type == DiskType::Fixed ? "fixed" : "dynamic",
                                                c.parent_block >> 10, c.sector);
                         });

TEST_F(VhdxDifferencingTest, ChildOfAQemuImage)
{
    // qemu writes the parent; the child's writes go to a raw copy of the parent through qemu-io too, and the
    // flattened child must equal that copy.
    std::string parent = create("subformat=dynamic,block_size=1M");
    qemu_write(parent, "-c 'write -P 0xab 0 1M' -c 'write -P 0x11 5M 8k' -c 'write -P 0x5c 9215k 2k'");
    auto expected = qemu_raw(parent);
    std::string reference = path("reference.raw");
    sh("qemu-img convert -f vhdx -O raw " + parent + " " + reference);
    std::string child = path("child.vhdx");
    make_child(child, parent);
    struct Fill {
        uint64_t offset;
        uint64_t length;
        uint8_t pattern;
    };
    const Fill fills[] = {{5 << 20, 4096, 0x77}, {(1 << 20) - 1024, 3072, 0x78}, {9 << 20, 1 << 20, 0x79},
                          {(5 << 20) + 512, 512, 0x7a}, {(64 << 20) - 512, 512, 0x7b}};
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().block_size, 1u << 20);
        EXPECT_TRUE(read_all(*d) == expected);
        std::string writes;
        for (const Fill& f : fills) {
            std::vector<uint8_t> data(f.length, f.pattern);
            ASSERT_TRUE(d->write(f.offset, data));
            writes += fmt::format(" -c 'write -P {} {} {}'", f.pattern, f.offset, f.length);
        }
        sh("qemu-io -f raw" + writes + " " + reference);
    }
    auto d = open_ok(child, true);
    ASSERT_TRUE(d);
    write_raw(path("child.raw"), read_all(*d));
    sh("qemu-img compare -f raw -F raw " + path("child.raw") + " " + reference);
    d.reset();
    sh("qemu-img check -f vhdx " + parent);
    EXPECT_TRUE(qemu_raw(parent) == expected);
}

TEST_F(VhdxDifferencingTest, ChainOfThree)
{
    std::string base = path("base.vhdx");
    std::string mid = path("mid.vhdx");
    std::string top = path("top.vhdx");
    Model m = make_parent(base, DiskType::Dynamic, 1 << 20, 512);
    make_child(mid, base);
    {
        auto d = open_ok(mid, false);
        ASSERT_TRUE(d);
        write(*d, m, (1 << 20) + 512, 4096, 0x31);
        write(*d, m, 10 << 20, 1 << 20, 0x32);
    }
    auto mid_model = m;
    make_child(top, mid);
    for (auto& k : m.kinds)
        k = ExtentKind::Parent;
    {
        auto d = open_ok(top, false);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().parent_path, mid);
        EXPECT_TRUE(read_all(*d) == m.bytes);
        write(*d, m, (1 << 20) + 1024, 4096, 0x33);
        write(*d, m, (10 << 20) + (512 << 10), 1 << 20, 0x34);
        EXPECT_TRUE(read_all(*d) == m.bytes);
    }
    auto d = open_ok(top, true);
    ASSERT_TRUE(d);
    EXPECT_TRUE(read_all(*d) == m.bytes);
    expect_extents(*d, m, 0, disk_size);
    auto middle = open_ok(mid, true);
    ASSERT_TRUE(middle);
    EXPECT_EQ(middle->info().parent_path, base);
    EXPECT_TRUE(read_all(*middle) == mid_model.bytes);
}

TEST_F(VhdxDifferencingTest, FindsTheParentAfterMoves)
{
    // relative_path: parent and child moved together.
    fs::create_directories(path("one/base"));
    fs::create_directories(path("one/kids"));
    Model m = make_parent(path("one/base/parent.vhdx"), DiskType::Dynamic, 1 << 20, 512);
    make_child(path("one/kids/child.vhdx"), path("one/base/parent.vhdx"));
    fs::rename(path("one"), path("two"));
    {
        auto d = open_ok(path("two/kids/child.vhdx"), true);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().parent_path, path("two/base/parent.vhdx"));
        EXPECT_TRUE(read_all(*d) == m.bytes);
    }
    // absolute_win32_path: only the child moved.
    fs::create_directories(path("two/elsewhere/deeper"));
    fs::rename(path("two/kids/child.vhdx"), path("two/elsewhere/deeper/child.vhdx"));
    make_child(path("two/kids/child2.vhdx"), path("two/base/parent.vhdx"));
    fs::rename(path("two/kids/child2.vhdx"), path("two/elsewhere/deeper/child2.vhdx"));
    {
        auto d = open_ok(path("two/elsewhere/deeper/child2.vhdx"), true);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().parent_path, path("two/base/parent.vhdx"));
        EXPECT_TRUE(read_all(*d) == m.bytes);
    }
    // The file name beside the child: both moved apart from where either locator points.
    fs::rename(path("two/base/parent.vhdx"), path("two/elsewhere/deeper/parent.vhdx"));
    {
        auto d = open_ok(path("two/elsewhere/deeper/child2.vhdx"), true);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->info().parent_path, path("two/elsewhere/deeper/parent.vhdx"));
        EXPECT_TRUE(read_all(*d) == m.bytes);
    }
}

TEST_F(VhdxDifferencingTest, RefusesMissingAndChangedParents)
{
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    make_parent(parent, DiskType::Dynamic, 1 << 20, 512);
    make_child(child, parent);
    // Opening the parent read-write without writing keeps its DataWriteGuid: the child still opens.
    {
        auto p = open_ok(parent, false);
        ASSERT_TRUE(p);
        ASSERT_TRUE(p->flush());
    }
    EXPECT_TRUE(open_ok(child, true));
    // A write to the parent changes its DataWriteGuid: the child no longer matches.
    {
        auto p = open_ok(parent, false);
        ASSERT_TRUE(p);
        std::vector<uint8_t> data(512, 9);
        ASSERT_TRUE(p->write(0, data));
    }
    expect_refused(child, "parent_linkage");
    // parent_linkage2 may name the parent instead.
    std::string copy = path("child2.vhdx");
    sh("cp " + child + " " + copy);
    replace_locator(copy, locator({{"parent_linkage", "{00000000-0000-0000-0000-000000000001}"},
                                   {"parent_linkage2", linkage_of(parent)},
                                   {"relative_path", "parent.vhdx"}}));
    EXPECT_TRUE(open_ok(copy, true));
    // Missing.
    std::remove(parent.c_str());
    expect_refused(child, "No such file");
    EXPECT_NE(error_of(child).find(path("parent.vhdx")), std::string::npos) << error_of(child);
}

TEST_F(VhdxDifferencingTest, RefusesLoopsAndParentsOfAnotherShape)
{
    std::string base = path("base.vhdx");
    std::string a = path("a.vhdx");
    std::string b = path("b.vhdx");
    make_parent(base, DiskType::Dynamic, 1 << 20, 512);
    make_child(a, base);
    make_child(b, a);
    // a -> b -> a.
    replace_locator(a, locator({{"parent_linkage", linkage_of(b)}, {"relative_path", "b.vhdx"}}));
    auto a_bytes = whole_file(a);
    expect_refused(b, "loops back");
    EXPECT_TRUE(whole_file(a) == a_bytes);
    // a -> a.
    replace_locator(a, locator({{"parent_linkage", linkage_of(a)}, {"relative_path", "a.vhdx"}}));
    expect_refused(a, "loops back");
    // A parent of another size.
    replace_locator(a, locator({{"parent_linkage", linkage_of(base)}, {"relative_path", "base.vhdx"}}));
    EXPECT_TRUE(open_ok(a, true));
    write_obj<uint64_t>(a, metadata_item(a, vhdx_virtual_disk_size_guid), disk_size / 2);
    expect_refused(a, "bytes with 512-byte sectors");
}

TEST_F(VhdxDifferencingTest, RefusesHostileLocators)
{
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    make_parent(parent, DiskType::Dynamic, 1 << 20, 512);
    make_child(child, parent);
    const std::vector<uint8_t> good =
        locator({{"parent_linkage", linkage_of(parent)}, {"relative_path", "parent.vhdx"}});
    ASSERT_TRUE(vhdx_detail::parse_parent_locator(good));
    // The item's structures, copied out of and back into its bytes.
    using Entry = VhdxParentLocatorEntry;
    using Header = VhdxParentLocatorHeader;
    auto get_entry = [](const std::vector<uint8_t>& item, size_t i) {
        Entry e;
        std::memcpy(&e, item.data() + sizeof(Header) + sizeof(Entry) * i, sizeof(e));
        return e;
    };
    auto edit_entry = [&](std::vector<uint8_t>& item, size_t i, auto change) {
        Entry e = get_entry(item, i);
        change(e);
        std::memcpy(item.data() + sizeof(Header) + sizeof(Entry) * i, &e, sizeof(e));
    };
    auto edit_header = [](std::vector<uint8_t>& item, auto change) {
        Header h;
        std::memcpy(&h, item.data(), sizeof(h));
        change(h);
        std::memcpy(item.data(), &h, sizeof(h));
    };
    struct Case {
        std::string what;
        std::vector<uint8_t> item;
    };
    std::vector<Case> cases;
    auto add = [&](std::string what, auto change) {
        std::vector<uint8_t> item = good;
        change(item);
        cases.push_back({std::move(what), std::move(item)});
    };
    const auto size = static_cast<uint32_t>(good.size());
    add("shorter than its 20-byte header", [](auto& item) { item.resize(10); });
    add("unsupported locator type",
        [&](auto& item) { edit_header(item, [](Header& h) { h.locator_type.data1 ^= 1; }); });
    add("do not fit", [&](auto& item) { edit_header(item, [](Header& h) { h.key_value_count = 1000; }); });
    add("outside the item", [&](auto& item) { edit_entry(item, 0, [&](Entry& e) { e.key_offset = size; }); });
    add("outside the item", [&](auto& item) { edit_entry(item, 1, [](Entry& e) { e.value_length = 0xfffe; }); });
    add("outside the item", [&](auto& item) { edit_entry(item, 0, [](Entry& e) { e.key_offset = 4; }); });
    add("outside the item", [&](auto& item) { edit_entry(item, 1, [](Entry& e) { e.value_offset = 0xfffffff0; }); });
    add("empty key", [&](auto& item) { edit_entry(item, 0, [](Entry& e) { e.key_length = 0; }); });
    add("not valid UTF-16", [&](auto& item) { edit_entry(item, 1, [](Entry& e) { e.value_length = 7; }); });
    add("not valid UTF-16", [&](auto& item) {
        uint32_t at = get_entry(item, 1).value_offset;
        item[at] = 0x00;
        item[at + 1] = 0xd8; // a lone high surrogate
    });
    add("NUL", [&](auto& item) {
        uint32_t at = get_entry(item, 1).value_offset;
        item[at + 2] = 0;
        item[at + 3] = 0;
    });
    add("appears twice", [&](auto& item) { edit_entry(item, 1, [&](Entry& e) { e = get_entry(item, 0); }); });
    add("no parent_linkage", [&](auto& item) { item[get_entry(item, 0).key_offset] = 'q'; });
    add("not a braced GUID", [&](auto& item) { item[get_entry(item, 0).value_offset] = '('; });
    add("no relative_path", [&](auto& item) { item[get_entry(item, 1).key_offset] = 'q'; });
    cases.push_back({"not a braced GUID", locator({{"parent_linkage", "{1234}"}, {"relative_path", "parent.vhdx"}})});
    cases.push_back({"no relative_path, volume_path or absolute_win32_path",
                     locator({{"parent_linkage", linkage_of(parent)}, {"other", "x"}})});
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(cases[i].what);
        std::string p = path(fmt::format("hostile{}.vhdx", i));
        sh("cp " + child + " " + p);
        replace_locator(p, cases[i].item);
        expect_refused(p, cases[i].what);
        auto parsed = vhdx_detail::parse_parent_locator(cases[i].item);
        ASSERT_FALSE(parsed);
        EXPECT_NE(parsed.error().message().find(cases[i].what), std::string::npos) << parsed.error().message();
    }
    // The item itself outside the metadata region.
    uint64_t at = metadata_entry(child, vhdx_parent_locator_guid);
    auto e = read_obj<VhdxMetadataTableEntry>(child, at);
    e.offset = (1 << 20) - 8;
    write_obj(child, at, e);
    expect_refused(child, "outside the metadata region");
}

TEST_F(VhdxDifferencingTest, RefusesBadDifferencingBatEntries)
{
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    make_parent(parent, DiskType::Dynamic, 2 << 20, 512);
    make_child(child, parent);
    // 2 MiB blocks, 512-byte sectors: chunk ratio 2048, so entry 2048 is the first chunk's sector bitmap.
    const uint64_t bat = bat_offset(child);
    const uint64_t sb = bat + 2048 * 8;
    struct Case {
        uint64_t at;
        uint64_t entry;
        const char* what;
    };
    const Case cases[] = {
        {sb, 3, "invalid sector bitmap block state"},
        {sb, (1ULL << 40) | vhdx_sb_present, "outside the file"},
        {sb, bat | vhdx_sb_present, "overlaps the BAT"},
        {bat + 8, vhdx_payload_partially_present, "without a sector bitmap block"},
        {bat + 8, 5, "invalid payload block state"},
    };
    for (size_t i = 0; i < std::size(cases); ++i) {
        SCOPED_TRACE(cases[i].what);
        std::string p = path(fmt::format("bad{}.vhdx", i));
        sh("cp " + child + " " + p);
        write_obj<uint64_t>(p, cases[i].at, cases[i].entry);
        expect_refused(p, cases[i].what);
    }
}

TEST_F(VhdxDifferencingTest, DiscardMakesTheRangeReadZeroes)
{
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    const uint64_t mib = 1 << 20;
    Model m = make_parent(parent, DiskType::Dynamic, 1 << 20, 512);
    make_child(child, parent);
    for (auto& k : m.kinds)
        k = ExtentKind::Parent;
    auto parent_bytes = whole_file(parent);
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        discard(*d, m, 10 * mib, mib, ExtentKind::Zero);                        // a whole block of the parent's
        discard(*d, m, 11 * mib + 4096, 8192, ExtentKind::Data);                // a part of one
        write(*d, m, 0, 8192, 0x41);                                            // partially present, then a part
        discard(*d, m, 4096, 8192, ExtentKind::Data);                           // of it and of the parent's
        write(*d, m, 2 * mib, mib, 0x42);                                       // fully present, then a part
        discard(*d, m, 2 * mib + 512, 1024, ExtentKind::Data);
        discard(*d, m, 31 * mib - 4096, mib + 4096, ExtentKind::Data);          // across blocks
        m.mark(31 * mib, mib, ExtentKind::Zero);
        write(*d, m, 4 * mib, mib, 0x43);                                       // a whole block written, discarded
        discard(*d, m, 4 * mib, mib, ExtentKind::Zero);
        write(*d, m, 4 * mib + 512, 512, 0x44);                                 // then written in part
        m.mark(4 * mib, mib, ExtentKind::Data);
        EXPECT_TRUE(read_all(*d) == m.bytes);
        expect_extents(*d, m, 0, disk_size);
        discard(*d, m, 11 * mib, 7 * mib, ExtentKind::Zero);                    // whole blocks of every kind
        EXPECT_TRUE(read_all(*d) == m.bytes);
        expect_extents(*d, m, 0, disk_size);
    }
    auto d = open_ok(child, true);
    ASSERT_TRUE(d);
    EXPECT_TRUE(read_all(*d) == m.bytes);
    expect_extents(*d, m, 0, disk_size);
    EXPECT_TRUE(whole_file(parent) == parent_bytes);
}

TEST_F(VhdxDifferencingTest, ReplaysTheChildLogAfterACrash)
{
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    Model m = make_parent(parent, DiskType::Dynamic, 1 << 20, 512);
    make_child(child, parent);
    std::string crashed = path("crashed.vhdx");
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        write(*d, m, 4096, 512, 0x51);              // block 0 partially present (a sector bitmap block)
        write(*d, m, 6 << 20, 1 << 20, 0x52);       // block 6 fully present
        write(*d, m, 8192, 1024, 0x53);             // more of block 0: only its bitmap changes, last
        ASSERT_TRUE(d->flush());
        sh("cp " + child + " " + crashed);
    }
    // Each log entry stands alone (earlier ones were flushed in place): undo what the last one wrote, the
    // bitmap sector, and replay must bring it back.
    auto sb_entry = read_obj<uint64_t>(crashed, bat_offset(crashed) + 4096 * 8);
    ASSERT_EQ(sb_entry & 7, vhdx_sb_present);
    std::vector<uint8_t> zero(4096);
    write_bytes(crashed, sb_entry & ~uint64_t{0xfffff}, zero.data(), zero.size());
    EXPECT_FALSE(open_vhdx(crashed, true));
    auto d = open_ok(crashed, false);
    ASSERT_TRUE(d);
    EXPECT_TRUE(read_all(*d) == m.bytes);
}

TEST_F(VhdxDifferencingTest, SectorBitmapsOfLaterChunks)
{
    // 512-byte sectors: a chunk is 4 GiB; with 1 MiB blocks the BAT has a sector bitmap entry after every 4096
    // payload entries, and a differencing image has one for the last (partial) chunk too.
    std::string parent = path("parent.vhdx");
    std::string child = path("child.vhdx");
    const uint64_t size = 5ULL << 30;
    const uint64_t boundary = 4ULL << 30;
    ASSERT_TRUE(create_vhdx(parent, size, DiskType::Dynamic, 1 << 20, 512));
    std::vector<uint8_t> expected = pattern(boundary - (1 << 20), 2 << 20, 7);
    {
        auto p = open_ok(parent, false);
        ASSERT_TRUE(p);
        ASSERT_TRUE(p->write(boundary - (1 << 20), expected));
    }
    make_child(child, parent);
    {
        auto d = open_ok(child, false);
        ASSERT_TRUE(d);
        auto data = pattern(boundary - 4096, 8192, 8);
        ASSERT_TRUE(d->write(boundary - 4096, data));
        std::copy(data.begin(), data.end(), expected.begin() + (1 << 20) - 4096);
        auto tail = pattern(size - 512, 512, 9);
        ASSERT_TRUE(d->write(size - 512, tail));
    }
    auto bat = bat_offset(child);
    EXPECT_EQ(read_obj<uint64_t>(child, bat + 4096 * 8) & 7, vhdx_sb_present);
    EXPECT_EQ(read_obj<uint64_t>(child, bat + (2 * 4097 - 1) * 8) & 7, vhdx_sb_present);
    auto d = open_ok(child, true);
    ASSERT_TRUE(d);
    std::vector<uint8_t> got(2 << 20);
    ASSERT_TRUE(d->read(boundary - (1 << 20), got));
    EXPECT_TRUE(got == expected);
    std::vector<uint8_t> last(512);
    ASSERT_TRUE(d->read(size - 512, last));
    EXPECT_TRUE(last == pattern(size - 512, 512, 9));
    auto ext = d->extents(boundary - 8192, 16384);
    ASSERT_TRUE(ext);
    std::vector<Extent> want = {{boundary - 8192, 4096, ExtentKind::Parent},
                                {boundary - 4096, 8192, ExtentKind::Data},
                                {boundary + 4096, 4096, ExtentKind::Parent}};
    EXPECT_EQ(*ext, want) << text(*ext);
}

TEST_F(VhdxDifferencingTest, CreateRefusesBadParents)
{
    std::string child = path("child.vhdx");
    EXPECT_FALSE(create_vhdx_differencing(child, path("missing.vhdx")));
    write_raw(path("raw.vhdx"), std::vector<uint8_t>(2 << 20));
    auto r = create_vhdx_differencing(child, path("raw.vhdx"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("vhdxfile"), std::string::npos) << r.error().message();
    EXPECT_NE(::access(child.c_str(), F_OK), 0);
    make_parent(path("parent.vhdx"), DiskType::Dynamic, 1 << 20, 512);
    make_child(child, path("parent.vhdx"));
    EXPECT_FALSE(create_vhdx_differencing(child, path("parent.vhdx"))); // exists
}

TEST_F(VhdxDifferencingTest, ExtentsOfFixedAndDynamicImages)
{
    const uint64_t mib = 1 << 20;
    std::string p = path("dynamic.vhdx");
    ASSERT_TRUE(create_vhdx(p, disk_size, DiskType::Dynamic, 1 << 20, 512));
    Model m(disk_size, 512, ExtentKind::Zero);
    {
        auto d = open_ok(p, false);
        ASSERT_TRUE(d);
        expect_extents(*d, m, 0, disk_size);
        write(*d, m, 0, 4096, 1);
        m.mark(0, mib, ExtentKind::Data); // the whole block is stored
        write(*d, m, 5 * mib, 2 * mib, 2);
        discard(*d, m, 5 * mib, mib, ExtentKind::Zero);
        write(*d, m, 20 * mib + 512, 512, 3);
        m.mark(20 * mib, mib, ExtentKind::Data);
        expect_extents(*d, m, 0, disk_size);
        expect_extents(*d, m, 1536, 2 * mib);
        expect_extents(*d, m, 6 * mib + 512, 512);
        EXPECT_FALSE(d->extents(100, 512));
        EXPECT_FALSE(d->extents(disk_size - 512, 1024));
    }
    auto d = open_ok(p, true);
    ASSERT_TRUE(d);
    expect_extents(*d, m, 0, disk_size);

    std::string f = path("fixed.vhdx");
    ASSERT_TRUE(create_vhdx(f, disk_size, DiskType::Fixed, 1 << 20, 4096));
    auto fixed = open_ok(f, true);
    ASSERT_TRUE(fixed);
    auto ext = fixed->extents(4096, disk_size - 8192);
    ASSERT_TRUE(ext);
    EXPECT_EQ(*ext, (std::vector<Extent>{{4096, disk_size - 8192, ExtentKind::Data}}));
}

} // namespace
} // namespace vmgen::vm::disk
