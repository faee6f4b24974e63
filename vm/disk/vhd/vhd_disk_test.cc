#include "vm/disk/vhd/vhd_disk.h"

#include "vm/disk/raw/raw_disk.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

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

} // namespace
} // namespace vmgen::vm::disk
