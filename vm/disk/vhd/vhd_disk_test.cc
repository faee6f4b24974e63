#include "vm/disk/vhd/vhd_disk.h"

#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhd/vhd_layout.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace vmgen::vm::disk {
namespace {

namespace p = protocols::disk;

std::vector<uint8_t> read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}
void write_file(const std::string& path, const std::vector<uint8_t>& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
int run(const std::string& command)
{
    const int status = std::system((command + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
std::string output(const std::string& command)
{
    std::string text;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr)
        return text;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0)
        text.append(buffer, n);
    ::pclose(pipe);
    return text;
}
bool have_qemu()
{
    return run("{ command -v qemu-img && command -v qemu-io; }") == 0;
}
// qemu sizes non-Microsoft images by CHS geometry; Hyper-V (and we) use current_size.
std::string qemu_vpc(const std::string& path)
{
    return "driver=vpc,force_size_calc=current_size,file.filename=" + path;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed)
{
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
    return v;
}

class VhdDiskTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vmgen_vhd_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string path(const char* name) const { return m_dir + "/" + name; }

    std::string m_dir;
};

TEST(VhdFormat, GeometryFollowsTheSpecAppendix)
{
    EXPECT_EQ(p::vhd_geometry(131072).cylinders, 963);
    const auto big = p::vhd_geometry(p::vhd_max_size / 512);
    EXPECT_EQ(big.heads, 16);
    EXPECT_EQ(big.sectors_per_track, 255);
    EXPECT_EQ(big.cylinders, 65535);
    const auto small = p::vhd_geometry(2048);
    EXPECT_EQ(small.heads, 4);
    EXPECT_EQ(small.sectors_per_track, 17);
}

// Writes the same data to a VHD and a raw mirror, checking the VHD reads it back.
void exercise(BlockDevice& vhd, BlockDevice& raw)
{
    const uint64_t size = vhd.size();
    struct Write {
        uint64_t offset;
        size_t length;
        uint8_t seed;
    };
    const Write writes[] = {
        { 0, 4096, 1 }, { (2 << 20) - 1024, 8192, 2 }, // crosses a 2 MiB block boundary
        { 5 << 20, 512, 3 }, { size - 1024, 1024, 4 }, { 1 << 20, 4096, 5 }, // rewrites an allocated block
        { 7 << 20, 4096, 0 }, // zeroes: stays unallocated in a dynamic disk
    };
    for (const auto& w : writes) {
        const auto data = w.seed == 0 ? std::vector<uint8_t>(w.length, 0) : pattern(w.length, w.seed);
        ASSERT_TRUE(vhd.write(w.offset, data)) << w.offset;
        ASSERT_TRUE(raw.write(w.offset, data));
        std::vector<uint8_t> back(w.length);
        ASSERT_TRUE(vhd.read(w.offset, back));
        ASSERT_EQ(back, data) << w.offset;
    }
    ASSERT_TRUE(vhd.flush());
    ASSERT_TRUE(raw.flush());
    std::vector<uint8_t> a(size), b(size);
    ASSERT_TRUE(vhd.read(0, a));
    ASSERT_TRUE(raw.read(0, b));
    ASSERT_TRUE(a == b);
}

void create_and_compare(const std::string& dir, DiskType type, uint32_t block_size)
{
    const auto vhd_path = dir + "/x.vhd";
    const auto raw_path = dir + "/x.raw";
    const uint64_t size = (12 << 20) + 512 * 7; // not a whole number of blocks nor a CHS size
    auto created = create_vhd(vhd_path, size, type, block_size);
    ASSERT_TRUE(created) << created.error().message();
    ASSERT_TRUE(create_raw(raw_path, size));
    {
        auto vhd = open_vhd(vhd_path, false);
        ASSERT_TRUE(vhd) << vhd.error().message();
        EXPECT_EQ((*vhd)->size(), size);
        EXPECT_EQ((*vhd)->info().format, DiskFormat::Vhd);
        EXPECT_EQ((*vhd)->info().type, type);
        EXPECT_EQ((*vhd)->info().identifier.size(), 36u);
        auto raw = std::move(*open_raw(raw_path, false));
        exercise(**vhd, *raw);
        if (type == DiskType::Dynamic) {
            // Non-zero writes touch at most 6 blocks (one crosses a 2 MiB boundary, one rewrites).
            struct stat st { };
            ASSERT_EQ(::stat(vhd_path.c_str(), &st), 0);
            EXPECT_EQ(static_cast<uint64_t>(st.st_size), (*vhd)->info().file_size);
            EXPECT_LT(static_cast<uint64_t>(st.st_size), 6ull * (block_size + 512) + 8192);
        }
        ASSERT_TRUE((*vhd)->discard(0, 4096));
        ASSERT_TRUE(raw->discard(0, 4096));
    }
    // Reopened, the data is still there.
    auto vhd = std::move(*open_vhd(vhd_path, true));
    std::vector<uint8_t> a(size), b(size);
    ASSERT_TRUE(vhd->read(0, a));
    ASSERT_TRUE(std::move(*open_raw(raw_path, true))->read(0, b));
    ASSERT_TRUE(a == b);
    EXPECT_TRUE(std::all_of(a.begin(), a.begin() + 4096, [](uint8_t x) { return x == 0; }));

    if (!have_qemu()) {
        GTEST_SKIP() << "qemu-img/qemu-io not installed: skipping the cross-check against QEMU";
    }
    // qemu-img has no check for vpc (exit 63, "does not support checks"); anything else is a failure.
    const int check = run("qemu-img check --image-opts " + qemu_vpc(vhd_path));
    EXPECT_TRUE(check == 0 || check == 63) << check;
    EXPECT_NE(output("qemu-img info --output=json --image-opts " + qemu_vpc(vhd_path))
                  .find(fmt::format("\"virtual-size\": {},", size)),
        std::string::npos);
    // Not -s: strict mode also compares allocation status, which differs between a VHD and a sparse file.
    EXPECT_EQ(run("qemu-img compare --image-opts " + qemu_vpc(vhd_path) + " driver=raw,file.filename=" + raw_path), 0);
}

TEST_F(VhdDiskTest, FixedCreateWriteReadAndQemuCompare)
{
    create_and_compare(m_dir, DiskType::Fixed, p::vhd_default_block_size);
}

TEST_F(VhdDiskTest, DynamicCreateWriteReadAndQemuCompare)
{
    create_and_compare(m_dir, DiskType::Dynamic, p::vhd_default_block_size);
}

TEST_F(VhdDiskTest, DynamicSmallBlocks)
{
    create_and_compare(m_dir, DiskType::Dynamic, 64 * 1024);
}

TEST_F(VhdDiskTest, CreateRefusesBadArguments)
{
    EXPECT_FALSE(create_vhd(path("a.vhd"), 1000, DiskType::Fixed));
    EXPECT_FALSE(create_vhd(path("a.vhd"), 0, DiskType::Dynamic));
    EXPECT_FALSE(create_vhd(path("a.vhd"), 3ull << 40, DiskType::Dynamic));
    EXPECT_FALSE(create_vhd(path("a.vhd"), 1 << 20, DiskType::Dynamic, 3 << 20));
    EXPECT_FALSE(create_vhd(path("a.vhd"), 1 << 20, DiskType::Dynamic, 512));
    EXPECT_FALSE(std::filesystem::exists(path("a.vhd")));
    ASSERT_TRUE(create_vhd(path("a.vhd"), 1 << 20, DiskType::Dynamic));
    EXPECT_FALSE(create_vhd(path("a.vhd"), 1 << 20, DiskType::Dynamic)) << "must not overwrite";
}

TEST_F(VhdDiskTest, ReadOnlyAndBounds)
{
    ASSERT_TRUE(create_vhd(path("a.vhd"), 4 << 20, DiskType::Dynamic));
    auto disk = std::move(*open_vhd(path("a.vhd"), true));
    std::vector<uint8_t> buf(512, 7);
    EXPECT_FALSE(disk->write(0, buf));
    EXPECT_FALSE(disk->discard(0, 512));
    EXPECT_TRUE(disk->read(0, buf));
    EXPECT_FALSE(disk->read(4 << 20, buf));
    EXPECT_FALSE(disk->read(100, buf));
    EXPECT_FALSE(disk->read(~0ull - 511, buf));
}

// Reads back what qemu-io wrote into images qemu-img created, then writes through us and compares.
void read_qemu_image(const std::string& dir, const char* subformat)
{
    if (!have_qemu()) {
        GTEST_SKIP() << "qemu-img/qemu-io not installed: skipping the QEMU interoperability test";
    }
    const auto vhd_path = dir + "/q.vhd";
    ASSERT_EQ(run(fmt::format("qemu-img create -f vpc -o subformat={} {} 64M", subformat, vhd_path)), 0);
    ASSERT_EQ(run(fmt::format("qemu-io -f vpc -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 3M 1536k' "
                              "-c 'write -P 0xef 60M 512' {}",
                  vhd_path)),
        0);
    auto disk = open_vhd(vhd_path, false);
    ASSERT_TRUE(disk) << disk.error().message();
    const uint64_t size = (*disk)->size();
    EXPECT_EQ(size, 67125248u); // qemu rounds 64 MiB up to the CHS geometry 964/8/17
    std::vector<uint8_t> all(size);
    ASSERT_TRUE((*disk)->read(0, all));
    for (uint64_t i = 0; i < size; i += 512) {
        uint8_t expect = 0;
        if (i < (1 << 20))
            expect = 0xab;
        else if (i >= (3 << 20) && i < (3 << 20) + (1536 << 10))
            expect = 0xcd;
        else if (i == (60 << 20))
            expect = 0xef;
        ASSERT_EQ(all[i], expect) << i;
        ASSERT_EQ(all[i + 511], expect) << i;
    }
    // Write through us (an allocated block and a new one); qemu reads the same.
    ASSERT_TRUE((*disk)->write(512 * 1024, std::vector<uint8_t>(4096, 0x11)));
    ASSERT_TRUE((*disk)->write(20 << 20, std::vector<uint8_t>(8192, 0x22)));
    ASSERT_TRUE((*disk)->flush());
    EXPECT_EQ(run(fmt::format("qemu-io -f vpc -c 'read -P 0x11 512k 4k' -c 'read -P 0x22 20M 8k' "
                              "-c 'read -P 0xab 0 512k' -c 'read -P 0xef 60M 512' -c 'read -P 0 21M 1M' {}",
                  vhd_path)),
        0);
}

TEST_F(VhdDiskTest, ReadsAndWritesQemuFixedImage)
{
    read_qemu_image(m_dir, "fixed");
}
TEST_F(VhdDiskTest, ReadsAndWritesQemuDynamicImage)
{
    read_qemu_image(m_dir, "dynamic");
}

// Corruptions: each is refused, and the file is left exactly as it was.
class VhdCorruptionTest : public VhdDiskTest {
protected:
    void SetUp() override
    {
        VhdDiskTest::SetUp();
        m_path = path("c.vhd");
        ASSERT_TRUE(create_vhd(m_path, 8 << 20, DiskType::Dynamic));
        {
            auto disk = std::move(*open_vhd(m_path, false));
            ASSERT_TRUE(disk->write(0, pattern(4096, 9)));
            ASSERT_TRUE(disk->write(4 << 20, pattern(4096, 10)));
        }
        m_good = read_file(m_path);
    }
    void expect_refused(const std::vector<uint8_t>& bytes, const char* what)
    {
        write_file(m_path, bytes);
        auto r = open_vhd(m_path, false);
        ASSERT_FALSE(r) << "accepted: " << what;
        EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
        EXPECT_TRUE(read_file(m_path) == bytes);
    }
    static void set_be32(std::vector<uint8_t>& b, size_t at, uint32_t v)
    {
        const uint32_t be = p::be_store(v);
        std::memcpy(b.data() + at, &be, 4);
    }
    static void fix_header_checksum(std::vector<uint8_t>& b)
    {
        set_be32(b, 512 + 36, p::vhd_checksum(std::span(b).subspan(512, 1024), 36));
    }
    static void fix_footer_checksum(std::vector<uint8_t>& b)
    {
        const size_t at = b.size() - 512;
        set_be32(b, at + 64, p::vhd_checksum(std::span(b).subspan(at, 512), 64));
    }

    std::string m_path;
    std::vector<uint8_t> m_good;
};

TEST_F(VhdCorruptionTest, GoodImageOpens)
{
    EXPECT_TRUE(open_vhd(m_path, false));
}

TEST_F(VhdCorruptionTest, FooterCookie)
{
    auto b = m_good;
    b[b.size() - 512] = 'k';
    expect_refused(b, "conectix");
}

TEST_F(VhdCorruptionTest, FooterChecksum)
{
    auto b = m_good;
    b[b.size() - 512 + 48 + 7] ^= 0x02; // current_size
    expect_refused(b, "footer checksum");
}

TEST_F(VhdCorruptionTest, ImpossibleSize)
{
    auto b = m_good;
    b[b.size() - 512 + 48 + 7] = 0x01; // current_size not a multiple of 512
    fix_footer_checksum(b);
    expect_refused(b, "impossible disk size");
}

TEST_F(VhdCorruptionTest, HeaderCookieAndChecksum)
{
    auto b = m_good;
    b[512] = 'X';
    expect_refused(b, "cxsparse");
    b = m_good;
    b[512 + 30] ^= 0x40; // max_table_entries
    expect_refused(b, "dynamic header checksum");
}

TEST_F(VhdCorruptionTest, BadBlockSizeAndTable)
{
    auto b = m_good;
    set_be32(b, 512 + 32, 3 << 20);
    fix_header_checksum(b);
    expect_refused(b, "block size");
    b = m_good;
    set_be32(b, 512 + 28, 1); // 1 entry for 4 blocks
    fix_header_checksum(b);
    expect_refused(b, "too small");
    b = m_good;
    b[512 + 16 + 4] = 0x7f; // table_offset far past the end
    fix_header_checksum(b);
    expect_refused(b, "outside the file");
}

TEST_F(VhdCorruptionTest, BatEntriesOutsideOrOverlapping)
{
    auto b = m_good;
    set_be32(b, 1536 + 4, 0x00100000); // block 1 far past the end of the file
    expect_refused(b, "outside the data area");
    b = m_good;
    set_be32(b, 1536 + 4, 1); // block 1 over the dynamic header
    expect_refused(b, "overlap");
    b = m_good;
    uint32_t first = 0;
    std::memcpy(&first, b.data() + 1536, 4);
    std::memcpy(b.data() + 1536 + 4, &first, 4); // block 1 shares block 0's space
    expect_refused(b, "overlap");
}

TEST_F(VhdCorruptionTest, Truncated)
{
    auto b = m_good;
    b.resize(b.size() - 4096);
    expect_refused(b, "conectix");
    expect_refused(std::vector<uint8_t>(100, 0), "too small");
}

// Differencing: a child over a parent reads the parent until written; the parent never changes.
void differencing(const std::string& dir, DiskType parent_type)
{
    const auto parent_path = dir + "/parent.vhd";
    const auto child_path = dir + "/child.vhd";
    const uint64_t size = (8 << 20) + 4096;
    ASSERT_TRUE(create_vhd(parent_path, size, parent_type));
    std::vector<uint8_t> mirror(size, 0);
    {
        auto parent = std::move(*open_vhd(parent_path, false));
        const auto data = pattern(3 << 20, 40);
        ASSERT_TRUE(parent->write(1 << 20, data));
        std::copy(data.begin(), data.end(), mirror.begin() + (1 << 20));
    }
    const auto parent_bytes = read_file(parent_path);
    auto created = create_vhd_differencing(child_path, parent_path);
    ASSERT_TRUE(created) << created.error().message();
    {
        auto child = open_vhd(child_path, false);
        ASSERT_TRUE(child) << child.error().message();
        EXPECT_EQ((*child)->info().type, DiskType::Differencing);
        EXPECT_EQ((*child)->info().parent_path, parent_path);
        EXPECT_EQ((*child)->size(), size);
        std::vector<uint8_t> all(size);
        ASSERT_TRUE((*child)->read(0, all));
        ASSERT_TRUE(all == mirror);
        // Partial writes into new and then already allocated blocks, zeroes over parent data, a discard.
        struct Op {
            uint64_t offset;
            size_t length;
            uint8_t seed;
        };
        const Op ops[] = { { (1 << 20) + 4096, 1024, 50 }, { (2 << 20) - 512, 2048, 51 }, { (1 << 20) + 8192, 512, 52 },
            { (3 << 20), 4096, 0 }, { size - 512, 512, 53 }, { 0, 512, 54 } };
        for (const auto& op : ops) {
            const auto data = op.seed == 0 ? std::vector<uint8_t>(op.length, 0) : pattern(op.length, op.seed);
            ASSERT_TRUE((*child)->write(op.offset, data));
            std::copy(data.begin(), data.end(), mirror.begin() + static_cast<ptrdiff_t>(op.offset));
        }
        ASSERT_TRUE((*child)->discard((2 << 20) + 8192, 8192));
        std::fill_n(mirror.begin() + (2 << 20) + 8192, 8192, uint8_t { 0 });
        ASSERT_TRUE((*child)->flush());
        ASSERT_TRUE((*child)->read(0, all));
        ASSERT_TRUE(all == mirror);
    }
    EXPECT_TRUE(read_file(parent_path) == parent_bytes) << "the parent changed";
    // Reopened; then both files moved elsewhere: the relative locator still finds the parent.
    std::vector<uint8_t> all(size);
    ASSERT_TRUE(std::move(*open_vhd(child_path, true))->read(0, all));
    ASSERT_TRUE(all == mirror);
    const auto moved = dir + "/moved";
    std::filesystem::create_directory(moved);
    std::filesystem::rename(parent_path, moved + "/parent.vhd");
    std::filesystem::rename(child_path, moved + "/child.vhd");
    auto reopened = open_vhd(moved + "/child.vhd", true);
    ASSERT_TRUE(reopened) << reopened.error().message();
    ASSERT_TRUE((*reopened)->read(0, all));
    ASSERT_TRUE(all == mirror);
    // A grandchild over the child.
    ASSERT_TRUE(create_vhd_differencing(moved + "/grandchild.vhd", moved + "/child.vhd"));
    auto grandchild = std::move(*open_vhd(moved + "/grandchild.vhd", false));
    ASSERT_TRUE(grandchild->write(4096, std::vector<uint8_t>(512, 0x77)));
    std::fill_n(mirror.begin() + 4096, 512, uint8_t { 0x77 });
    ASSERT_TRUE(grandchild->read(0, all));
    ASSERT_TRUE(all == mirror);
}

TEST_F(VhdDiskTest, DifferencingOverDynamic)
{
    differencing(m_dir, DiskType::Dynamic);
}
TEST_F(VhdDiskTest, DifferencingOverFixed)
{
    differencing(m_dir, DiskType::Fixed);
}

TEST_F(VhdDiskTest, DifferencingRefusesWrongOrMissingParent)
{
    ASSERT_TRUE(create_vhd(path("p.vhd"), 4 << 20, DiskType::Dynamic));
    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("p.vhd")));
    EXPECT_FALSE(create_vhd_differencing(path("c.vhd"), path("p.vhd"))) << "must not overwrite";
    EXPECT_FALSE(create_vhd(path("d.vhd"), 4 << 20, DiskType::Differencing));
    EXPECT_FALSE(create_vhd_differencing(path("e.vhd"), path("missing.vhd")));
    std::filesystem::remove(path("p.vhd"));
    auto missing = open_vhd(path("c.vhd"), false);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("parent not found"), std::string::npos) << missing.error().message();
    ASSERT_TRUE(create_vhd(path("p.vhd"), 4 << 20, DiskType::Dynamic)); // same name, new id
    auto replaced = open_vhd(path("c.vhd"), false);
    ASSERT_FALSE(replaced);
    EXPECT_NE(replaced.error().message().find("the child expects"), std::string::npos) << replaced.error().message();
}

TEST_F(VhdDiskTest, DifferencingRefusesALoop)
{
    ASSERT_TRUE(create_vhd(path("p.vhd"), 4 << 20, DiskType::Dynamic));
    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("p.vhd")));
    std::filesystem::rename(path("c.vhd"), path("p.vhd")); // p.vhd now names itself as its parent
    auto r = open_vhd(path("p.vhd"), false);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("deeper than"), std::string::npos) << r.error().message();
}

bool all_zero(std::span<const uint8_t> bytes)
{
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

// qemu sees the VHD at `vhd_path` as `size` bytes holding what the raw file holds.
void expect_qemu_matches(const std::string& vhd_path, const std::string& raw_path, uint64_t size)
{
    if (!have_qemu())
        return;
    EXPECT_NE(output("qemu-img info --output=json --image-opts " + qemu_vpc(vhd_path))
                  .find(fmt::format("\"virtual-size\": {},", size)),
        std::string::npos)
        << vhd_path << " is not " << size << " bytes for qemu";
    EXPECT_EQ(run("qemu-img compare --image-opts " + qemu_vpc(vhd_path) + " driver=raw,file.filename=" + raw_path), 0)
        << vhd_path;
}

constexpr uint64_t mib = 1 << 20;

TEST_F(VhdDiskTest, ExtentsOfFixedAndDynamicDisks)
{
    ASSERT_TRUE(create_vhd(path("f.vhd"), 8 * mib, DiskType::Fixed));
    auto fixed = std::move(*open_vhd(path("f.vhd"), true));
    EXPECT_EQ(*fixed->extents(0, 8 * mib), (std::vector<Extent> { { 0, 8 * mib, ExtentKind::Data } }));
    EXPECT_FALSE(fixed->extents(8 * mib - 512, 1024));

    const uint64_t size = 8 * mib + 4096;
    ASSERT_TRUE(create_vhd(path("d.vhd"), size, DiskType::Dynamic));
    {
        auto disk = std::move(*open_vhd(path("d.vhd"), false));
        EXPECT_EQ(*disk->extents(0, size), (std::vector<Extent> { { 0, size, ExtentKind::Zero } }));
        ASSERT_TRUE(disk->write(2 * mib + 512 * 1024, pattern(4096, 1))); // block 1
        ASSERT_TRUE(disk->write(6 * mib, pattern(512, 2))); // block 3
        ASSERT_TRUE(disk->write(8 * mib, std::vector<uint8_t>(4096, 0))); // zeroes: block 4 stays unallocated
        const std::vector<Extent> expected = { { 0, 2 * mib, ExtentKind::Zero }, { 2 * mib, 2 * mib, ExtentKind::Data },
            { 4 * mib, 2 * mib, ExtentKind::Zero }, { 6 * mib, 2 * mib, ExtentKind::Data },
            { 8 * mib, 4096, ExtentKind::Zero } };
        EXPECT_EQ(*disk->extents(0, size), expected);
        EXPECT_EQ(*disk->extents(2 * mib - 512, 1024),
            (std::vector<Extent> { { 2 * mib - 512, 512, ExtentKind::Zero }, { 2 * mib, 512, ExtentKind::Data } }));
        EXPECT_TRUE(disk->extents(0, 0)->empty());
        EXPECT_FALSE(disk->extents(512, 100));
    }
    // A block whose sector bitmap marks sectors absent (other tools may write such blocks): they read as
    // zeroes, and are Zero extents. Block 1's sectors 1024-1027 (where the pattern starts) are cleared.
    auto bytes = read_file(path("d.vhd"));
    uint32_t entry = 0;
    std::memcpy(&entry, bytes.data() + 1536 + 4, 4);
    bytes[p::be_load(entry) * 512ull + 128] = 0x0f;
    write_file(path("d.vhd"), bytes);
    auto disk = std::move(*open_vhd(path("d.vhd"), true));
    const std::vector<Extent> expected = { { 0, 2 * mib, ExtentKind::Zero }, { 2 * mib, 512 * 1024, ExtentKind::Data },
        { 2 * mib + 512 * 1024, 2048, ExtentKind::Zero },
        { 2 * mib + 512 * 1024 + 2048, 1536 * 1024 - 2048, ExtentKind::Data }, { 4 * mib, 2 * mib, ExtentKind::Zero },
        { 6 * mib, 2 * mib, ExtentKind::Data }, { 8 * mib, 4096, ExtentKind::Zero } };
    EXPECT_EQ(*disk->extents(0, size), expected);
    std::vector<uint8_t> back(4096);
    ASSERT_TRUE(disk->read(2 * mib + 512 * 1024, back));
    const auto written = pattern(4096, 1);
    EXPECT_TRUE(all_zero(std::span(back).first(2048)));
    EXPECT_TRUE(std::equal(back.begin() + 2048, back.end(), written.begin() + 2048));
}

TEST_F(VhdDiskTest, ExtentsOfADifferencingDisk)
{
    ASSERT_TRUE(create_vhd(path("p.vhd"), 8 * mib, DiskType::Dynamic));
    ASSERT_TRUE(std::move(*open_vhd(path("p.vhd"), false))->write(0, pattern(mib, 3)));
    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("p.vhd")));
    const std::vector<Extent> expected = { { 0, mib + 4096, ExtentKind::Parent },
        { mib + 4096, 1024, ExtentKind::Data }, { mib + 5120, 3072, ExtentKind::Parent },
        { mib + 8192, 512, ExtentKind::Data }, { mib + 8704, 3 * mib - 8704, ExtentKind::Parent },
        { 4 * mib, 2 * mib, ExtentKind::Data }, { 6 * mib, 4096, ExtentKind::Parent },
        { 6 * mib + 4096, 4096, ExtentKind::Data }, { 6 * mib + 8192, 2 * mib - 8192, ExtentKind::Parent } };
    {
        auto child = std::move(*open_vhd(path("c.vhd"), false));
        EXPECT_EQ(*child->extents(0, 8 * mib), (std::vector<Extent> { { 0, 8 * mib, ExtentKind::Parent } }));
        ASSERT_TRUE(child->write(mib + 4096, pattern(1024, 4))); // partial: two sectors of a new block
        ASSERT_TRUE(child->write(mib + 8192, pattern(512, 5))); // one more in the same block
        ASSERT_TRUE(child->write(4 * mib, pattern(2 * mib, 6))); // a whole block
        ASSERT_TRUE(child->discard(6 * mib + 4096, 4096)); // zeroes that hide the parent: stored
        EXPECT_EQ(*child->extents(0, 8 * mib), expected);
        EXPECT_EQ(*child->extents(mib + 4608, 1024),
            (std::vector<Extent> { { mib + 4608, 512, ExtentKind::Data }, { mib + 5120, 512, ExtentKind::Parent } }));
    }
    auto child = std::move(*open_vhd(path("c.vhd"), true));
    EXPECT_EQ(*child->extents(0, 8 * mib), expected);
}

TEST_F(VhdDiskTest, ResizeFixedGrowsAndShrinks)
{
    const auto vhd_path = path("x.vhd");
    const auto raw_path = path("x.raw");
    ASSERT_TRUE(create_vhd(vhd_path, 3 * mib, DiskType::Fixed));
    ASSERT_TRUE(create_raw(raw_path, 3 * mib));
    auto vhd = std::move(*open_vhd(vhd_path, false));
    auto raw = std::move(*open_raw(raw_path, false));
    auto both = [&](auto&& op) {
        ASSERT_TRUE(op(*vhd));
        ASSERT_TRUE(op(*raw));
    };
    both([&](BlockDevice& d) { return d.write(0, pattern(64 * 1024, 7)); });
    both([&](BlockDevice& d) { return d.write(3 * mib - 4096, pattern(4096, 8)); });

    const uint64_t grown = 10 * mib + 1536;
    auto resized = vhd->resize(grown);
    ASSERT_TRUE(resized) << resized.error().message();
    ASSERT_TRUE(raw->resize(grown));
    EXPECT_EQ(vhd->size(), grown);
    EXPECT_EQ(vhd->info().file_size, grown + 512);
    EXPECT_EQ(std::filesystem::file_size(vhd_path), grown + 512);
    std::vector<uint8_t> fresh(grown - 3 * mib, 0xff);
    ASSERT_TRUE(vhd->read(3 * mib, fresh));
    EXPECT_TRUE(all_zero(fresh)) << "the grown range (and the old footer's place) must read as zeroes";
    both([&](BlockDevice& d) { return d.write(grown - 4096, pattern(4096, 9)); });
    both([](BlockDevice& d) { return d.flush(); });
    expect_qemu_matches(vhd_path, raw_path, grown);

    const uint64_t shrunk = 2 * mib + 1024;
    ASSERT_TRUE(vhd->resize(shrunk));
    ASSERT_TRUE(raw->resize(shrunk));
    EXPECT_EQ(vhd->size(), shrunk);
    EXPECT_EQ(std::filesystem::file_size(vhd_path), shrunk + 512);
    std::vector<uint8_t> sector(512);
    EXPECT_FALSE(vhd->read(shrunk, sector));
    both([&](BlockDevice& d) { return d.write(shrunk - 512, pattern(512, 10)); });
    both([](BlockDevice& d) { return d.flush(); });
    vhd.reset();
    auto reopened = open_vhd(vhd_path, false);
    ASSERT_TRUE(reopened) << reopened.error().message();
    EXPECT_EQ((*reopened)->size(), shrunk);
    std::vector<uint8_t> a(shrunk), b(shrunk);
    ASSERT_TRUE((*reopened)->read(0, a));
    ASSERT_TRUE(raw->read(0, b));
    EXPECT_TRUE(a == b);
    expect_qemu_matches(vhd_path, raw_path, shrunk);
}

// Grows a dynamic VHD filled with data far enough that the BAT needs the room its first blocks occupy.
void grow_past_the_bat(const std::string& dir, uint64_t size, uint32_t block_size, uint64_t new_size)
{
    const auto vhd_path = dir + "/g.vhd";
    const auto raw_path = dir + "/g.raw";
    ASSERT_TRUE(create_vhd(vhd_path, size, DiskType::Dynamic, block_size));
    ASSERT_TRUE(create_raw(raw_path, size));
    const auto data = pattern(static_cast<size_t>(size), 11);
    {
        auto vhd = std::move(*open_vhd(vhd_path, false));
        auto raw = std::move(*open_raw(raw_path, false));
        ASSERT_TRUE(vhd->write(0, data));
        ASSERT_TRUE(raw->write(0, data));
        const uint64_t file_before = vhd->info().file_size;
        auto resized = vhd->resize(new_size);
        ASSERT_TRUE(resized) << resized.error().message();
        ASSERT_TRUE(raw->resize(new_size));
        EXPECT_EQ(vhd->size(), new_size);
        EXPECT_GT(vhd->info().file_size, file_before) << "blocks in the BAT's way move to the end of the file";
        EXPECT_EQ(std::filesystem::file_size(vhd_path), vhd->info().file_size);
        std::vector<uint8_t> back(static_cast<size_t>(size));
        ASSERT_TRUE(vhd->read(0, back));
        ASSERT_TRUE(back == data) << "the moved blocks lost data";
        std::vector<uint8_t> fresh(4 * mib, 0xff);
        for (const uint64_t at : { size, new_size / 2, new_size - fresh.size() }) {
            ASSERT_TRUE(vhd->read(at, fresh));
            EXPECT_TRUE(all_zero(fresh)) << at;
        }
        const auto more = pattern(8192, 12);
        for (const uint64_t at : { size, new_size / 2 + 512, new_size - more.size() }) {
            ASSERT_TRUE(vhd->write(at, more));
            ASSERT_TRUE(raw->write(at, more));
        }
        const auto extents = *vhd->extents(0, new_size);
        ASSERT_FALSE(extents.empty());
        // Data: the old disk, then the blocks the write at `size` allocated.
        EXPECT_EQ(extents.front(), (Extent { 0, size + std::max<uint64_t>(block_size, 8192), ExtentKind::Data }));
        EXPECT_EQ(extents.back().offset + extents.back().length, new_size);
        ASSERT_TRUE(vhd->flush());
        ASSERT_TRUE(raw->flush());
    }
    auto reopened = open_vhd(vhd_path, false);
    ASSERT_TRUE(reopened) << reopened.error().message();
    EXPECT_EQ((*reopened)->size(), new_size);
    std::vector<uint8_t> back(static_cast<size_t>(size));
    ASSERT_TRUE((*reopened)->read(0, back));
    ASSERT_TRUE(back == data);
    // Still writable after reopening: a block past everything written so far.
    const auto late = pattern(4096, 13);
    ASSERT_TRUE((*reopened)->write(new_size / 4, late));
    ASSERT_TRUE(std::move(*open_raw(raw_path, false))->write(new_size / 4, late));
    ASSERT_TRUE((*reopened)->flush());
    expect_qemu_matches(vhd_path, raw_path, new_size);
}

TEST_F(VhdDiskTest, ResizeDynamicGrowMovesSmallBlocksOutOfTheBatsWay)
{
    // 16 entries of 4 KiB blocks (a 512-byte BAT) to 16384 (64 KiB): 15 of the 16 blocks move.
    grow_past_the_bat(m_dir, 64 * 1024, 4096, 64 * mib);
}

TEST_F(VhdDiskTest, ResizeDynamicGrowMovesLargeBlocksOutOfTheBatsWay)
{
    // 2 entries of 2 MiB blocks to 51200 (200 KiB of BAT): both blocks move.
    grow_past_the_bat(m_dir, 4 * mib, p::vhd_default_block_size, 100ull << 30);
}

TEST_F(VhdDiskTest, ResizeDynamicShrinksThenGrowsBack)
{
    const auto vhd_path = path("s.vhd");
    const auto raw_path = path("s.raw");
    ASSERT_TRUE(create_vhd(vhd_path, 8 * mib, DiskType::Dynamic));
    ASSERT_TRUE(create_raw(raw_path, 8 * mib));
    auto vhd = std::move(*open_vhd(vhd_path, false));
    auto raw = std::move(*open_raw(raw_path, false));
    const auto data = pattern(8 * mib, 14);
    ASSERT_TRUE(vhd->write(0, data));
    ASSERT_TRUE(raw->write(0, data));
    const uint64_t file_size = vhd->info().file_size;

    const uint64_t shrunk = 3 * mib + 512; // block 1 partly kept, blocks 2 and 3 dropped
    ASSERT_TRUE(vhd->resize(shrunk));
    ASSERT_TRUE(raw->resize(shrunk));
    EXPECT_EQ(vhd->size(), shrunk);
    EXPECT_EQ(vhd->info().file_size, file_size) << "dropped blocks stay in the file";
    std::vector<uint8_t> back(shrunk);
    ASSERT_TRUE(vhd->read(0, back));
    EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
    EXPECT_FALSE(vhd->read(shrunk, std::span(back).first(512)));
    expect_qemu_matches(vhd_path, raw_path, shrunk);
    vhd.reset();
    auto reopened = open_vhd(vhd_path, false);
    ASSERT_TRUE(reopened) << reopened.error().message();
    vhd = std::move(*reopened);
    EXPECT_EQ(vhd->size(), shrunk);

    // Growing back: nothing of the dropped range comes back, in the kept block's tail or the dropped blocks.
    ASSERT_TRUE(vhd->resize(8 * mib));
    ASSERT_TRUE(raw->resize(8 * mib));
    std::vector<uint8_t> fresh(8 * mib - shrunk, 0xff);
    ASSERT_TRUE(vhd->read(shrunk, fresh));
    EXPECT_TRUE(all_zero(fresh));
    EXPECT_EQ(*vhd->extents(0, 8 * mib),
        (std::vector<Extent> { { 0, 4 * mib, ExtentKind::Data }, { 4 * mib, 4 * mib, ExtentKind::Zero } }));
    ASSERT_TRUE(vhd->write(6 * mib, pattern(4096, 15)));
    ASSERT_TRUE(raw->write(6 * mib, pattern(4096, 15)));
    ASSERT_TRUE(vhd->flush());
    ASSERT_TRUE(raw->flush());
    expect_qemu_matches(vhd_path, raw_path, 8 * mib);
}

TEST_F(VhdDiskTest, ResizeRefusals)
{
    ASSERT_TRUE(create_vhd(path("d.vhd"), 4 * mib, DiskType::Dynamic));
    const auto before = read_file(path("d.vhd"));
    auto ro = std::move(*open_vhd(path("d.vhd"), true));
    auto refused = ro->resize(8 * mib);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("read-only"), std::string::npos) << refused.error().message();
    auto rw = std::move(*open_vhd(path("d.vhd"), false));
    EXPECT_FALSE(rw->resize(0));
    EXPECT_FALSE(rw->resize(8 * mib + 100));
    EXPECT_FALSE(rw->resize(p::vhd_max_size + 512));
    EXPECT_EQ(rw->size(), 4 * mib);
    EXPECT_TRUE(read_file(path("d.vhd")) == before);

    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("d.vhd")));
    const auto child_before = read_file(path("c.vhd"));
    auto child = std::move(*open_vhd(path("c.vhd"), false));
    refused = child->resize(8 * mib);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("parent's size"), std::string::npos) << refused.error().message();
    EXPECT_TRUE(read_file(path("c.vhd")) == child_before);

    // The largest size the format allows is accepted (a 4 MiB BAT).
    child.reset();
    ASSERT_TRUE(rw->resize(p::vhd_max_size));
    EXPECT_EQ(std::move(*open_vhd(path("d.vhd"), true))->size(), p::vhd_max_size);
}

// BAT entry `index` of a VHD we made (the BAT follows the footer copy and the header, at 1536).
uint32_t bat_entry(const std::string& vhd_path, size_t index)
{
    const auto bytes = read_file(vhd_path);
    uint32_t entry = 0;
    std::memcpy(&entry, bytes.data() + 1536 + index * 4, 4);
    return p::be_load(entry);
}

std::vector<uint8_t> read_all(BlockDevice& disk)
{
    std::vector<uint8_t> all(disk.size());
    EXPECT_TRUE(disk.read(0, all));
    return all;
}

// The same call on a VHD and on its raw mirror.
template <typename Op> void both(BlockDevice& vhd, BlockDevice& raw, Op&& op)
{
    ASSERT_TRUE(op(vhd));
    ASSERT_TRUE(op(raw));
}

TEST_F(VhdDiskTest, DiscardReleasesWholeBlocksOfADynamicDisk)
{
    const auto vhd_path = path("d.vhd");
    const auto raw_path = path("d.raw");
    const uint64_t size = 8 * mib + 4096; // blocks 0-3 of 2 MiB, and block 4 of 4 KiB
    ASSERT_TRUE(create_vhd(vhd_path, size, DiskType::Dynamic));
    ASSERT_TRUE(create_raw(raw_path, size));
    auto vhd = std::move(*open_vhd(vhd_path, false));
    auto raw = std::move(*open_raw(raw_path, false));
    both(*vhd, *raw, [&](BlockDevice& d) { return d.write(0, pattern(size, 21)); });
    const uint64_t file_size = vhd->info().file_size;
    // Blocks 1 and 2 whole with the end of block 0 and the start of block 3; then block 4, to the disk's end.
    for (const Extent& e : { Extent { 2 * mib - 4096, 4 * mib + 8192 }, Extent { 8 * mib, 4096 } })
        both(*vhd, *raw, [&](BlockDevice& d) { return d.discard(e.offset, e.length); });
    const std::vector<Extent> released = { { 0, 2 * mib, ExtentKind::Data }, { 2 * mib, 4 * mib, ExtentKind::Zero },
        { 6 * mib, 2 * mib, ExtentKind::Data }, { 8 * mib, 4096, ExtentKind::Zero } };
    EXPECT_EQ(*vhd->extents(0, size), released);
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw));
    for (const size_t i : { 1u, 2u, 4u })
        EXPECT_EQ(bat_entry(vhd_path, i), p::vhd_bat_unallocated) << i;
    EXPECT_NE(bat_entry(vhd_path, 3), p::vhd_bat_unallocated);
    EXPECT_EQ(vhd->info().file_size, file_size) << "released blocks stay in the file until compact()";
    EXPECT_EQ(std::filesystem::file_size(vhd_path), file_size);
    // Discarding what is released already writes nothing.
    const auto bytes = read_file(vhd_path);
    ASSERT_TRUE(vhd->discard(2 * mib, 4 * mib));
    EXPECT_TRUE(read_file(vhd_path) == bytes);
    // Reopened, the same; a write into a released block allocates it anew, at the end of the file.
    vhd.reset();
    vhd = std::move(*open_vhd(vhd_path, false));
    EXPECT_EQ(*vhd->extents(0, size), released);
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw));
    both(*vhd, *raw, [&](BlockDevice& d) { return d.write(4 * mib + 512, pattern(4096, 22)); });
    EXPECT_EQ(vhd->info().file_size, file_size + 2 * mib + 512);
    EXPECT_EQ(*vhd->extents(2 * mib, 4 * mib),
        (std::vector<Extent> { { 2 * mib, 2 * mib, ExtentKind::Zero }, { 4 * mib, 2 * mib, ExtentKind::Data } }));
    both(*vhd, *raw, [&](BlockDevice& d) { return d.flush(); });
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw));
    expect_qemu_matches(vhd_path, raw_path, size);
}

// Releases some of the blocks a dynamic disk wrote out of order, then compacts it.
TEST_F(VhdDiskTest, CompactMovesTheLastBlocksIntoTheHolesAndTruncates)
{
    const auto vhd_path = path("c.vhd");
    const auto raw_path = path("c.raw");
    constexpr uint32_t block = 1 << 20;
    constexpr uint64_t slot = block + 512; // the sector bitmap takes a sector
    const uint64_t size = 16 * mib;
    ASSERT_TRUE(create_vhd(vhd_path, size, DiskType::Dynamic, block));
    ASSERT_TRUE(create_raw(raw_path, size));
    auto vhd = std::move(*open_vhd(vhd_path, false));
    auto raw = std::move(*open_raw(raw_path, false));
    for (const uint64_t i : { 5u, 0u, 12u, 3u, 15u, 8u, 1u, 10u, 6u, 14u }) { // file order
        both(*vhd, *raw, [&](BlockDevice& d) { return d.write(i * block, pattern(block, static_cast<uint8_t>(i))); });
    }
    const uint64_t file_size = vhd->info().file_size;
    EXPECT_EQ(file_size, 2048 + 10 * slot + 512);
    for (const uint64_t i : { 0u, 3u, 8u, 10u, 14u }) {
        both(*vhd, *raw, [&](BlockDevice& d) { return d.discard(i * block, block); });
    }
    const auto extents = *vhd->extents(0, size);
    auto compacted = vhd->compact();
    ASSERT_TRUE(compacted) << compacted.error().message();
    EXPECT_EQ(vhd->info().file_size, file_size - 5 * slot);
    EXPECT_EQ(std::filesystem::file_size(vhd_path), file_size - 5 * slot);
    EXPECT_EQ(*vhd->extents(0, size), extents);
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw));
    // The five blocks left lie right after the BAT.
    std::vector<uint32_t> sectors;
    for (size_t i = 0; i < 16; ++i) {
        if (bat_entry(vhd_path, i) != p::vhd_bat_unallocated)
            sectors.push_back(bat_entry(vhd_path, i));
    }
    std::sort(sectors.begin(), sectors.end());
    ASSERT_EQ(sectors.size(), 5u);
    for (size_t k = 0; k < sectors.size(); ++k)
        EXPECT_EQ(sectors[k] * 512ull, 2048 + k * slot);
    // Nothing left to do: the file stays as it is, byte for byte.
    const auto bytes = read_file(vhd_path);
    ASSERT_TRUE(vhd->compact());
    EXPECT_TRUE(read_file(vhd_path) == bytes);
    // New blocks go to the new end of the file.
    both(*vhd, *raw, [&](BlockDevice& d) { return d.write(2 * block + 4096, pattern(4096, 23)); });
    EXPECT_EQ(vhd->info().file_size, file_size - 4 * slot);
    both(*vhd, *raw, [&](BlockDevice& d) { return d.flush(); });
    vhd.reset();
    auto reopened = open_vhd(vhd_path, false);
    ASSERT_TRUE(reopened) << reopened.error().message();
    EXPECT_TRUE(read_all(**reopened) == read_all(*raw));
    expect_qemu_matches(vhd_path, raw_path, size);
}

TEST_F(VhdDiskTest, CompactOfADifferencingChild)
{
    const uint64_t size = 8 * mib;
    ASSERT_TRUE(create_vhd(path("p.vhd"), size, DiskType::Dynamic));
    ASSERT_TRUE(std::move(*open_vhd(path("p.vhd"), false))->write(0, pattern(size, 24)));
    const auto parent_bytes = read_file(path("p.vhd"));
    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("p.vhd")));
    auto mirror = pattern(size, 24);
    {
        auto child = std::move(*open_vhd(path("c.vhd"), false));
        for (const uint64_t i : { 3u, 0u, 2u, 1u }) { // file order; partial blocks (sector bitmaps not full)
            const auto data = pattern(8192, static_cast<uint8_t>(30 + i));
            ASSERT_TRUE(child->write(i * 2 * mib + 4096, data));
            std::copy(data.begin(), data.end(), mirror.begin() + static_cast<ptrdiff_t>(i * 2 * mib + 4096));
        }
    }
    // Another tool released block 0 (the second in the file): its range shows the parent again.
    auto bytes = read_file(path("c.vhd"));
    std::fill_n(bytes.begin() + 1536, 4, uint8_t { 0xff });
    write_file(path("c.vhd"), bytes);
    const auto parent_data = pattern(size, 24);
    std::copy_n(parent_data.begin(), 2 * mib, mirror.begin());
    auto child = std::move(*open_vhd(path("c.vhd"), false));
    const auto extents = *child->extents(0, size);
    const uint64_t file_size = child->info().file_size;
    auto compacted = child->compact();
    ASSERT_TRUE(compacted) << compacted.error().message();
    EXPECT_EQ(child->info().file_size, file_size - (2 * mib + 512));
    EXPECT_EQ(std::filesystem::file_size(path("c.vhd")), file_size - (2 * mib + 512));
    EXPECT_TRUE(read_all(*child) == mirror);
    child.reset();
    auto reopened = open_vhd(path("c.vhd"), true);
    ASSERT_TRUE(reopened) << reopened.error().message();
    EXPECT_EQ((*reopened)->info().parent_path, path("p.vhd"));
    EXPECT_EQ(*(*reopened)->extents(0, size), extents);
    EXPECT_TRUE(read_all(**reopened) == mirror);
    EXPECT_TRUE(read_file(path("p.vhd")) == parent_bytes) << "the parent changed";
}

TEST_F(VhdDiskTest, CompactWithNothingToDoChangesNothing)
{
    ASSERT_TRUE(create_vhd(path("f.vhd"), 4 * mib, DiskType::Fixed));
    ASSERT_TRUE(create_vhd(path("e.vhd"), 4 * mib, DiskType::Dynamic));
    ASSERT_TRUE(create_vhd(path("d.vhd"), 8 * mib, DiskType::Dynamic));
    {
        auto d = std::move(*open_vhd(path("d.vhd"), false));
        ASSERT_TRUE(d->write(6 * mib, pattern(4096, 25)));
        ASSERT_TRUE(d->write(0, pattern(4096, 26)));
        ASSERT_TRUE(std::move(*open_vhd(path("f.vhd"), false))->write(0, pattern(4096, 27)));
    }
    ASSERT_TRUE(create_vhd_differencing(path("c.vhd"), path("d.vhd")));
    ASSERT_TRUE(create_vhd_differencing(path("g.vhd"), path("c.vhd")));
    ASSERT_TRUE(std::move(*open_vhd(path("g.vhd"), false))->write(2 * mib, pattern(4096, 28)));
    for (const char* name : { "f.vhd", "e.vhd", "d.vhd", "c.vhd", "g.vhd" }) {
        const auto bytes = read_file(path(name));
        auto disk = std::move(*open_vhd(path(name), false));
        auto compacted = disk->compact();
        ASSERT_TRUE(compacted) << name << ": " << compacted.error().message();
        EXPECT_EQ(disk->info().file_size, bytes.size()) << name;
        disk.reset();
        EXPECT_TRUE(read_file(path(name)) == bytes) << name;
        auto refused = std::move(*open_vhd(path(name), true))->compact();
        ASSERT_FALSE(refused) << name;
        EXPECT_NE(refused.error().message().find("read-only"), std::string::npos) << refused.error().message();
    }
}

TEST_F(VhdDiskTest, CompactGivesBackTheBlocksAShrinkDropped)
{
    const auto vhd_path = path("s.vhd");
    const auto raw_path = path("s.raw");
    ASSERT_TRUE(create_vhd(vhd_path, 8 * mib, DiskType::Dynamic));
    ASSERT_TRUE(create_raw(raw_path, 8 * mib));
    auto vhd = std::move(*open_vhd(vhd_path, false));
    auto raw = std::move(*open_raw(raw_path, false));
    for (const uint64_t i : { 3u, 1u, 0u, 2u }) { // blocks 2 and 3 (dropped) lie first and last in the file
        const auto data = pattern(2 * mib, static_cast<uint8_t>(40 + i));
        both(*vhd, *raw, [&](BlockDevice& d) { return d.write(i * 2 * mib, data); });
    }
    const uint64_t file_size = vhd->info().file_size;
    const uint64_t shrunk = 3 * mib + 512;
    both(*vhd, *raw, [&](BlockDevice& d) { return d.resize(shrunk); });
    ASSERT_TRUE(vhd->compact());
    EXPECT_EQ(vhd->info().file_size, file_size - 2 * (2 * mib + 512));
    EXPECT_EQ(std::filesystem::file_size(vhd_path), vhd->info().file_size);
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw));
    both(*vhd, *raw, [&](BlockDevice& d) { return d.resize(8 * mib); });
    EXPECT_TRUE(read_all(*vhd) == read_all(*raw)) << "the dropped range came back";
    vhd.reset();
    EXPECT_TRUE(read_all(*std::move(*open_vhd(vhd_path, true))) == read_all(*raw));
    expect_qemu_matches(vhd_path, raw_path, 8 * mib);
}

// The plan on its own, over layouts other tools may make.
TEST(VhdLayout, CompactionPlan)
{
    constexpr uint64_t slot = 4096 + 512;
    const std::vector<VhdFileRange> metadata = { { 0, 512 }, { 512, 1536 }, { 1536, 1600 } };
    auto sectors = [](std::initializer_list<uint64_t> offsets) {
        std::vector<uint32_t> bat;
        for (const uint64_t o : offsets)
            bat.push_back(o == 0 ? p::vhd_bat_unallocated : static_cast<uint32_t>(o / 512));
        return bat;
    };
    // Holes of a slot at 6656 and 15872: the last two blocks move into them, the block left ends below.
    const auto bat = sectors({ 2048, 11264, 0, 25088, 20480 });
    auto plan = plan_vhd_compaction(metadata, bat, slot, 1600, 29696);
    EXPECT_EQ(plan.moves, (std::vector<VhdBlockMove> { { 3, 25088, 6656 }, { 4, 20480, 15872 } }));
    EXPECT_EQ(plan.footer_offset, 20480u);
    // A hole smaller than a slot holds nothing.
    plan = plan_vhd_compaction(metadata, sectors({ 2048, 8704, 13312 }), slot, 1600, 17920);
    EXPECT_TRUE(plan.moves.empty());
    EXPECT_EQ(plan.footer_offset, 17920u);
    // Metadata past the last block (a parent locator): moving blocks would not shorten the file.
    auto with_locator = metadata;
    with_locator.push_back({ 17920, 18000 });
    plan = plan_vhd_compaction(with_locator, sectors({ 2048, 11264 }), slot, 1600, 18432);
    EXPECT_TRUE(plan.moves.empty());
    EXPECT_EQ(plan.footer_offset, 18432u);
    // ... but blocks past it move below it, and none below `data_begin`.
    plan = plan_vhd_compaction(with_locator, sectors({ 18432, 0, 27648 }), slot, 1600, 36864);
    EXPECT_EQ(plan.moves, (std::vector<VhdBlockMove> { { 2, 27648, 2048 }, { 0, 18432, 6656 } }));
    EXPECT_EQ(plan.footer_offset, 18432u);
    plan = plan_vhd_compaction(with_locator, sectors({ 18432, 0, 27648 }), slot, 18432, 36864);
    EXPECT_EQ(plan.moves, (std::vector<VhdBlockMove> { { 2, 27648, 23040 } }));
    EXPECT_EQ(plan.footer_offset, 27648u);
    // No blocks: the file ends after the metadata.
    plan = plan_vhd_compaction(metadata, sectors({ 0, 0 }), slot, 1600, 36864);
    EXPECT_TRUE(plan.moves.empty());
    EXPECT_EQ(plan.footer_offset, 2048u);
}

} // namespace
} // namespace vmgen::vm::disk
