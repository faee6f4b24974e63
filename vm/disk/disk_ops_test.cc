// convert_disk, merge_disk, resize_disk, check_disk, cross-checked with qemu-img (qemu-utils): convert round trips
// in both directions over every subformat qemu makes, `qemu-img compare` for contents, `qemu-img check` for VHDX.
#include "vm/disk/disk_ops.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace vmgen::vm::disk {
namespace {

CreateOptions differencing(const std::string& parent)
{
    CreateOptions o;
    o.type = DiskType::Differencing;
    o.parent = parent;
    return o;
}
CreateOptions sized(DiskType type, uint64_t size)
{
    CreateOptions o;
    o.type = type;
    o.size = size;
    return o;
}
ConvertOptions to_type(DiskType type)
{
    ConvertOptions o;
    o.type = type;
    return o;
}
ConvertOptions to_sectors(uint32_t sector)
{
    ConvertOptions o;
    o.logical_sector_size = sector;
    return o;
}

class DiskOpsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vmgen_diskops_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    static int sh_status(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
    static void sh(const std::string& cmd) { ASSERT_EQ(sh_status(cmd), 0) << cmd; }

    static std::string qemu_format(const std::string& p)
    {
        switch (format_from_path(p)) {
        case DiskFormat::Vhd:
            return "vpc";
        case DiskFormat::Vhdx:
            return "vhdx";
        case DiskFormat::Raw:
            break;
        }
        return "raw";
    }
    // The virtual size qemu-img sees.
    static uint64_t qemu_size(const std::string& p)
    {
        const std::string cmd = "qemu-img info -f " + qemu_format(p) + " --output=json " + p
                              + " | sed -n 's/.*\"virtual-size\": *\\([0-9]*\\).*/\\1/p'";
        FILE* pipe = ::popen(cmd.c_str(), "r");
        if (pipe == nullptr)
            return 0;
        unsigned long long size = 0;
        if (std::fscanf(pipe, "%llu", &size) != 1)
            size = 0;
        ::pclose(pipe);
        return size;
    }
    // qemu-img sees the same size, and `qemu-img compare` the same bytes.
    static void expect_same(const std::string& a, const std::string& b)
    {
        EXPECT_EQ(qemu_size(a), qemu_size(b)) << a << " vs " << b;
        EXPECT_NE(qemu_size(a), 0u) << a;
        EXPECT_EQ(sh_status("qemu-img compare -f " + qemu_format(a) + " -F " + qemu_format(b) + " " + a + " " + b), 0)
            << a << " vs " << b;
    }
    static void expect_qemu_check(const std::string& p)
    {
        if (format_from_path(p) == DiskFormat::Vhdx) { // qemu 7.2 cannot check VHD; raw has nothing to check
            EXPECT_EQ(sh_status("qemu-img check -f vhdx " + p), 0) << p;
        }
    }

    // A raw reference image with data, a zero-filled stretch and holes, and its twin in `format`.
    void make_sample(const std::string& raw)
    {
        sh("qemu-img create -f raw " + raw + " 96M");
        sh("qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 3M 5k' -c 'write -z 8M 4M' "
           "-c 'write -P 0x33 40M 3M' -c 'write -P 0x44 100659200 4k' " + raw);
    }

    static std::vector<uint8_t> read_all(BlockDevice& d)
    {
        std::vector<uint8_t> out(d.size());
        EXPECT_TRUE(d.read(0, out));
        return out;
    }

    std::string m_dir;
};

TEST_F(DiskOpsTest, FormatFromPathAndNames)
{
    EXPECT_EQ(format_from_path("a/b.VHDX"), DiskFormat::Vhdx);
    EXPECT_EQ(format_from_path("x.vhd"), DiskFormat::Vhd);
    EXPECT_EQ(format_from_path("x.img"), DiskFormat::Raw);
    EXPECT_EQ(format_from_path("vhd"), DiskFormat::Raw);
    EXPECT_EQ(format_name(DiskFormat::Vhdx), "VHDX");
    EXPECT_EQ(type_name(DiskType::Differencing), "Differencing");
    auto missing = open_disk(path("nope.vhdx"), true);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("no such file"), std::string::npos);
}

// Images qemu-img made, of every subformat, converted by us into every format and type: same bytes.
TEST_F(DiskOpsTest, ConvertsEveryQemuSubformatToEveryFormat)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    const std::vector<std::pair<std::string, std::string>> sources = {
        {"vhdx", "subformat=dynamic"}, {"vhdx", "subformat=fixed"}, {"vhdx", "subformat=dynamic,block_size=1M"},
        {"vpc", "subformat=dynamic,force_size=on"}, {"vpc", "subformat=fixed,force_size=on"}};
    int n = 0;
    for (const auto& [qfmt, opts] : sources) {
        const auto src = path("src" + std::to_string(n++) + (qfmt == "vpc" ? ".vhd" : ".vhdx"));
        sh("qemu-img convert -f raw -O " + qfmt + " -o " + opts + " " + raw + " " + src);
        for (const char* ext : {".vhdx", ".vhd", ".img"}) {
            for (const auto type : {DiskType::Dynamic, DiskType::Fixed}) {
                if (std::string(ext) == ".img" && type == DiskType::Dynamic)
                    continue;
                const auto dst = path("dst" + std::to_string(n++) + ext);
                auto converted = convert_disk(src, dst, to_type(type));
                ASSERT_TRUE(converted) << src << " -> " << dst << ": " << converted.error().message();
                expect_same(raw, dst);
                expect_qemu_check(dst);
                auto d = open_disk(dst, true);
                ASSERT_TRUE(d) << d.error().message();
                if (std::string(ext) != ".img") {
                    EXPECT_EQ((*d)->info().type, type) << dst;
                }
                EXPECT_EQ((*d)->size(), 96u << 20);
                ASSERT_TRUE(check_disk(dst)) << dst;
            }
        }
    }
}

// Our images converted by qemu-img into the other formats read the same as our source, and back again.
TEST_F(DiskOpsTest, RoundTripsThroughQemuImgConvert)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    for (const char* ext : {".vhdx", ".vhd"}) {
        const auto ours = path(std::string("ours") + ext);
        ASSERT_TRUE(convert_disk(raw, ours, {}));
        for (const char* qfmt : {"vhdx", "vpc", "raw"}) {
            const auto theirs = path(std::string("theirs_") + qfmt + ext + (std::string(qfmt) == "vpc" ? ".vhd"
                                                                           : std::string(qfmt) == "vhdx" ? ".vhdx"
                                                                                                          : ".img"));
            sh("qemu-img convert -f " + qemu_format(ours) + " -O " + qfmt + " " + ours + " " + theirs);
            // qemu rounds VHD sizes to CHS geometry unless force_size; compare contents over our size.
            if (std::string(qfmt) != "vpc") {
                expect_same(ours, theirs);
            }
            const auto back = path(std::string("back_") + qfmt + ext);
            ASSERT_TRUE(convert_disk(theirs, back, {})) << theirs;
            if (std::string(qfmt) != "vpc") {
                expect_same(ours, back);
            }
        }
    }
}

TEST_F(DiskOpsTest, ConvertKeepsTheDestinationSparseAndFlattensDifferencing)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    const auto parent = path("parent.vhd");
    ASSERT_TRUE(convert_disk(raw, parent, {}));
    const auto child = path("child.vhd");
    ASSERT_TRUE(create_disk(child, differencing(parent)));
    {
        auto d = open_disk(child, false);
        ASSERT_TRUE(d);
        std::vector<uint8_t> data(8192, 0x5a);
        ASSERT_TRUE((*d)->write(40u << 20, data));
        ASSERT_TRUE((*d)->close());
    }
    const auto flat = path("flat.vhdx");
    ConvertOptions options;
    options.block_size = 1u << 20;
    ASSERT_TRUE(convert_disk(child, flat, options));
    auto f = open_disk(flat, true);
    ASSERT_TRUE(f);
    EXPECT_EQ((*f)->info().type, DiskType::Dynamic);
    EXPECT_EQ((*f)->info().block_size, 1u << 20);
    auto c = open_disk(child, true);
    ASSERT_TRUE(c);
    EXPECT_TRUE(read_all(**f) == read_all(**c));
    // Only the 1 MiB blocks holding non-zero data are stored: 0, 3M, 40M..43M, the last one; not the zeroes
    // written at 8M..12M nor the untouched space.
    uint64_t stored = 0;
    auto extents = (*f)->extents(0, (*f)->size());
    ASSERT_TRUE(extents);
    for (const auto& e : *extents)
        stored += e.kind == ExtentKind::Data ? e.length : 0;
    EXPECT_EQ(stored, 6u << 20);
    EXPECT_LT((*f)->info().file_size, 16u << 20);
    expect_qemu_check(flat);
}

TEST_F(DiskOpsTest, ConvertRefusesAnExistingDestinationAndCleansUpAfterFailure)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    const auto dst = path("out.vhdx");
    sh("touch " + dst);
    auto r = convert_disk(raw, dst, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("already exists"), std::string::npos);
    EXPECT_EQ(std::filesystem::file_size(dst), 0u);
    // A source that fails to read half-way (truncated raw image that still opens: the size check passes
    // at open, then the read fails) leaves no destination behind.
    const auto broken = path("broken.vhd");
    ASSERT_TRUE(convert_disk(raw, broken, to_type(DiskType::Fixed)));
    std::filesystem::resize_file(broken, 50u << 20); // cuts the footer off: refused at open
    auto bad = convert_disk(broken, path("never.vhdx"), {});
    EXPECT_FALSE(bad);
    EXPECT_FALSE(std::filesystem::exists(path("never.vhdx")));
    // VHD cannot take 4 KiB sectors.
    auto sectors = convert_disk(raw, path("x.vhd"), to_sectors(4096));
    EXPECT_FALSE(sectors);
    EXPECT_FALSE(std::filesystem::exists(path("x.vhd")));
}

TEST_F(DiskOpsTest, ConvertToFourKibSectorVhdx)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    const auto dst = path("4k.vhdx");
    ASSERT_TRUE(convert_disk(raw, dst, to_sectors(4096)));
    auto d = open_disk(dst, true);
    ASSERT_TRUE(d);
    EXPECT_EQ((*d)->sector_size(), 4096u);
    auto r = open_disk(raw, true);
    ASSERT_TRUE(r);
    EXPECT_TRUE(read_all(**d) == read_all(**r));
    // And back to a 512-byte-sector VHD.
    const auto back = path("back.vhd");
    ASSERT_TRUE(convert_disk(dst, back, {}));
    expect_same(raw, back);
}

TEST_F(DiskOpsTest, MergeWritesTheChildIntoTheParentAndDeletesIt)
{
    const auto raw = path("ref.img");
    make_sample(raw);
    const auto parent = path("parent.vhd");
    ASSERT_TRUE(convert_disk(raw, parent, {}));
    const auto child = path("child.vhd");
    ASSERT_TRUE(create_disk(child, differencing(parent)));
    std::vector<uint8_t> expected;
    {
        auto d = open_disk(child, false);
        ASSERT_TRUE(d);
        std::vector<uint8_t> a(4096, 0x77);
        std::vector<uint8_t> zeroes(1024, 0);
        ASSERT_TRUE((*d)->write(512, a));
        ASSERT_TRUE((*d)->write(3u << 20, zeroes)); // zeroes over parent data must reach the parent
        ASSERT_TRUE((*d)->write(70u << 20, a));
        expected = read_all(**d);
        ASSERT_TRUE((*d)->close());
    }
    std::vector<std::pair<uint64_t, uint64_t>> progress;
    auto merged = merge_disk(child, [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });
    ASSERT_TRUE(merged) << merged.error().message();
    EXPECT_EQ(*merged, parent);
    EXPECT_FALSE(std::filesystem::exists(child));
    auto p = open_disk(parent, true);
    ASSERT_TRUE(p);
    EXPECT_TRUE(read_all(**p) == expected);
    ASSERT_FALSE(progress.empty());
    EXPECT_EQ(progress.back().first, 96u << 20);
    EXPECT_EQ(progress.back().second, 96u << 20);
    ASSERT_TRUE(check_disk(parent));

    auto not_child = merge_disk(parent);
    ASSERT_FALSE(not_child);
    EXPECT_NE(not_child.error().message().find("not a differencing disk"), std::string::npos);
}

TEST_F(DiskOpsTest, MergeIntoADifferencingParentKeepsTheChain)
{
    const auto base = path("base.vhd");
    ASSERT_TRUE(create_disk(base, sized(DiskType::Dynamic, 16u << 20)));
    const auto mid = path("mid.vhd");
    const auto top = path("top.vhd");
    ASSERT_TRUE(create_disk(mid, differencing(base)));
    ASSERT_TRUE(create_disk(top, differencing(mid)));
    std::vector<uint8_t> expected;
    {
        auto d = open_disk(top, false);
        ASSERT_TRUE(d);
        std::vector<uint8_t> a(2048, 0x31);
        ASSERT_TRUE((*d)->write(1u << 20, a));
        expected = read_all(**d);
        ASSERT_TRUE((*d)->close());
    }
    ASSERT_TRUE(merge_disk(top));
    auto m = open_disk(mid, true);
    ASSERT_TRUE(m);
    EXPECT_EQ((*m)->info().type, DiskType::Differencing);
    EXPECT_TRUE(read_all(**m) == expected);
    auto b = open_disk(base, true);
    ASSERT_TRUE(b);
    EXPECT_TRUE(read_all(**b) == std::vector<uint8_t>(16u << 20, 0)); // the base is untouched
}

TEST_F(DiskOpsTest, ResizeGrowsAndRefusesLosingDataUnlessAllowed)
{
    for (const char* name : {"r.img", "d.vhd", "f.vhd", "d.vhdx", "f.vhdx"}) {
        const auto p = path(name);
        const bool fixed = name[0] == 'f';
        ASSERT_TRUE(create_disk(p, sized(fixed ? DiskType::Fixed : DiskType::Dynamic, 8u << 20)))
            << name;
        {
            auto d = open_disk(p, false);
            ASSERT_TRUE(d);
            std::vector<uint8_t> a(4096, 0x5c);
            ASSERT_TRUE((*d)->write(6u << 20, a));
            ASSERT_TRUE((*d)->close());
        }
        auto grown = resize_disk(p, 40u << 20, false);
        if (!grown) {
            // Formats whose resize has not landed say so; the message must be clear.
            ADD_FAILURE() << name << ": " << grown.error().message();
            continue;
        }
        {
            auto d = open_disk(p, false);
            ASSERT_TRUE(d);
            EXPECT_EQ((*d)->size(), 40u << 20) << name;
            std::vector<uint8_t> got(4096);
            ASSERT_TRUE((*d)->read(6u << 20, got));
            EXPECT_EQ(got, std::vector<uint8_t>(4096, 0x5c)) << name;
            ASSERT_TRUE((*d)->read(39u << 20, got));
            EXPECT_EQ(got, std::vector<uint8_t>(4096, 0)) << name;
            std::vector<uint8_t> b(4096, 0x6d);
            ASSERT_TRUE((*d)->write((40u << 20) - 4096, b));
            ASSERT_TRUE((*d)->close());
        }
        expect_qemu_check(p);
        // Shrinking over stored data is refused and changes nothing ...
        auto refused = resize_disk(p, 4u << 20, false);
        ASSERT_FALSE(refused) << name;
        EXPECT_NE(refused.error().message().find("stored data"), std::string::npos) << refused.error().message();
        {
            auto d = open_disk(p, true);
            ASSERT_TRUE(d);
            EXPECT_EQ((*d)->size(), 40u << 20);
        }
        // ... unless allowed.
        ASSERT_TRUE(resize_disk(p, 4u << 20, true)) << name;
        auto d = open_disk(p, true);
        ASSERT_TRUE(d);
        EXPECT_EQ((*d)->size(), 4u << 20) << name;
        ASSERT_TRUE(check_disk(p)) << name;
        expect_qemu_check(p);
    }
}

// Optimize releases stored zero blocks and gives their space back, without changing the contents.
TEST_F(DiskOpsTest, OptimizeReleasesZeroBlocksAndShrinksTheFile)
{
    for (const char* name : {"o.img", "o.vhd", "o.vhdx"}) {
        const auto p = path(name);
        CreateOptions options = sized(DiskType::Dynamic, 64u << 20);
        if (format_from_path(p) == DiskFormat::Raw)
            options.type = DiskType::Fixed;
        else
            options.block_size = 1u << 20;
        ASSERT_TRUE(create_disk(p, options)) << name;
        std::vector<uint8_t> before;
        {
            auto d = open_disk(p, false);
            ASSERT_TRUE(d);
            // 16 MiB of data overwritten with zeroes (stored), and data in the first and last 1 MiB blocks.
            std::vector<uint8_t> ones(16u << 20, 1);
            ASSERT_TRUE((*d)->write(8u << 20, ones));
            std::vector<uint8_t> zeroes(16u << 20, 0);
            ASSERT_TRUE((*d)->write(8u << 20, zeroes));
            std::vector<uint8_t> a(4096, 0xa5);
            ASSERT_TRUE((*d)->write(0, a));
            ASSERT_TRUE((*d)->write((64u << 20) - 4096, a));
            before = read_all(**d);
            ASSERT_TRUE((*d)->close());
        }
        auto report = optimize_disk(p);
        ASSERT_TRUE(report) << name << ": " << report.error().message();
        EXPECT_EQ(report->zero_bytes_released, 16u << 20) << name;
        EXPECT_LE(report->allocated_after + (15u << 20), report->allocated_before) << name;
        if (format_from_path(p) != DiskFormat::Raw) {
            EXPECT_LE(report->file_size_after + (15u << 20), report->file_size_before) << name;
        }
        auto d = open_disk(p, true);
        ASSERT_TRUE(d);
        EXPECT_TRUE(read_all(**d) == before) << name;
        auto extents = (*d)->extents(0, (*d)->size());
        ASSERT_TRUE(extents);
        uint64_t stored = 0;
        for (const auto& e : *extents)
            stored += e.kind == ExtentKind::Data ? e.length : 0;
        EXPECT_LE(stored, 2u << 20) << name;
        expect_qemu_check(p);
        ASSERT_TRUE(check_disk(p));
        // A second run finds nothing more.
        auto again = optimize_disk(p);
        ASSERT_TRUE(again);
        EXPECT_EQ(again->zero_bytes_released, 0u) << name;
        EXPECT_EQ(again->file_size_after, report->file_size_after) << name;
    }
}

TEST_F(DiskOpsTest, CheckReadsOnlyStoredRangesAndReportsThem)
{
    const auto p = path("big.vhdx");
    ASSERT_TRUE(create_disk(p, sized(DiskType::Dynamic, 1ull << 40))); // 1 TiB, sparse
    {
        auto d = open_disk(p, false);
        ASSERT_TRUE(d);
        std::vector<uint8_t> a(4096, 1);
        ASSERT_TRUE((*d)->write(512ull << 30, a));
        ASSERT_TRUE((*d)->close());
    }
    uint64_t last = 0;
    auto report = check_disk(p, [&](uint64_t done, uint64_t total) {
        EXPECT_GE(done, last);
        EXPECT_EQ(total, 1ull << 40);
        last = done;
    });
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_EQ(last, 1ull << 40);
    EXPECT_EQ(report->data_bytes + report->zero_bytes, 1ull << 40);
    EXPECT_GT(report->data_bytes, 0u);
    EXPECT_LE(report->data_bytes, 32u << 20); // one 32 MiB block
    EXPECT_EQ(report->parent_bytes, 0u);
}

} // namespace
} // namespace vmgen::vm::disk
