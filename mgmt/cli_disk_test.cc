// new-vhd, get-vhd, test-vhd, convert-vhd, resize-vhd, merge-vhd through run_cli, in-process.
#include "mgmt/cli.h"
#include "mgmt/cli_test_fixture.h"
#include "mgmt/temp_home.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace vmgen::mgmt {
namespace {

using nlohmann::json;

using cli_testing::CliResult;
using cli_testing::run_captured;

class CliDiskTest : public ::testing::Test {
protected:
    CliDiskTest() { m_context.home = m_home.path() / "store"; }

    CliResult run(std::vector<std::string> args) { return run_captured(args, m_context); }

    std::string path(const std::string& name) const { return (m_home.path() / name).string(); }

    json get_json(const std::string& file)
    {
        auto result = run({"get-vhd", file, "--format", "json"});
        EXPECT_EQ(result.code, exit_ok) << result.err;
        return json::parse(result.out);
    }

    // A command that must fail with exit 1, an error containing `expected`, and leave `file` absent.
    void expect_failure(std::vector<std::string> args, std::string_view expected, const std::string& file)
    {
        auto result = run(args);
        EXPECT_EQ(result.code, exit_error) << args[0] << " " << args[1];
        EXPECT_TRUE(result.err.starts_with("vmgen: error: ")) << result.err;
        EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
        EXPECT_TRUE(result.out.empty()) << result.out;
        EXPECT_FALSE(std::filesystem::exists(file)) << file;
    }

    TempHome m_home;
    CliContext m_context;
};

TEST_F(CliDiskTest, HelpListsTheDiskCommands)
{
    auto result = run({"help"});
    ASSERT_EQ(result.code, exit_ok);
    for (const char* name : {"new-vhd", "get-vhd", "test-vhd", "convert-vhd", "resize-vhd", "merge-vhd", "optimize-vhd"})
        EXPECT_NE(result.out.find(name), std::string::npos) << name;
    result = run({"new-vhd", "--help"});
    EXPECT_EQ(result.code, exit_ok);
    EXPECT_NE(result.out.find("--logical-sector"), std::string::npos);
}

TEST_F(CliDiskTest, NewVhdDefaultsToDynamic)
{
    auto file = path("disk.vhd");
    auto result = run({"new-vhd", file, "--size", "64M"});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("VhdType            : Dynamic\n"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("Path               : " + file + "\n"), std::string::npos) << result.out;

    auto info = get_json(file);
    EXPECT_EQ(info["Path"], file);
    EXPECT_EQ(info["VhdFormat"], "VHD");
    EXPECT_EQ(info["VhdType"], "Dynamic");
    EXPECT_EQ(info["Size"], 64ull << 20);
    EXPECT_LT(info["FileSize"].get<uint64_t>(), 1ull << 20);
    EXPECT_TRUE(info["MinimumSize"].is_null());
    EXPECT_EQ(info["LogicalSectorSize"], 512);
    EXPECT_EQ(info["PhysicalSectorSize"], 512);
    EXPECT_EQ(info["BlockSize"], 2u << 20);
    EXPECT_TRUE(info["ParentPath"].is_null());
    EXPECT_EQ(info["DiskIdentifier"].get<std::string>().size(), 36u);
}

TEST_F(CliDiskTest, NewVhdEveryFormatAndType)
{
    ASSERT_EQ(run({"new-vhd", path("fixed.vhd"), "--size", "8M", "--fixed"}).code, exit_ok);
    auto info = get_json(path("fixed.vhd"));
    EXPECT_EQ(info["VhdType"], "Fixed");
    EXPECT_EQ(info["BlockSize"], 0);
    EXPECT_EQ(info["FileSize"], (8ull << 20) + 512);

    ASSERT_EQ(run({"new-vhd", path("small.vhd"), "--size", "8M", "--block-size", "512K"}).code, exit_ok);
    EXPECT_EQ(get_json(path("small.vhd"))["BlockSize"], 512u << 10);

    ASSERT_EQ(run({"new-vhd", path("child.vhd"), "--differencing", "--parent", path("small.vhd")}).code, exit_ok);
    info = get_json(path("child.vhd"));
    EXPECT_EQ(info["VhdType"], "Differencing");
    EXPECT_EQ(info["Size"], 8u << 20);
    EXPECT_EQ(info["BlockSize"], 512u << 10);
    EXPECT_EQ(info["ParentPath"], path("small.vhd"));

    ASSERT_EQ(run({"new-vhd", path("dynamic.vhdx"), "--size", "64M"}).code, exit_ok);
    info = get_json(path("dynamic.vhdx"));
    EXPECT_EQ(info["VhdFormat"], "VHDX");
    EXPECT_EQ(info["VhdType"], "Dynamic");
    EXPECT_EQ(info["Size"], 64u << 20);
    EXPECT_EQ(info["BlockSize"], 32u << 20);
    EXPECT_EQ(info["LogicalSectorSize"], 512);

    ASSERT_EQ(run({"new-vhd", path("4k.vhdx"), "--size", "64M", "--dynamic", "--block-size", "1M",
                   "--logical-sector", "4096"}).code, exit_ok);
    info = get_json(path("4k.vhdx"));
    EXPECT_EQ(info["BlockSize"], 1u << 20);
    EXPECT_EQ(info["LogicalSectorSize"], 4096);

    ASSERT_EQ(run({"new-vhd", path("fixed.vhdx"), "--size", "8M", "--fixed"}).code, exit_ok);
    info = get_json(path("fixed.vhdx"));
    EXPECT_EQ(info["VhdType"], "Fixed");
    EXPECT_GE(info["FileSize"].get<uint64_t>(), 8u << 20);

    for (const char* name : {"disk.img", "disk.raw", "disk"}) {
        ASSERT_EQ(run({"new-vhd", path(name), "--size", "1M"}).code, exit_ok) << name;
        info = get_json(path(name));
        EXPECT_EQ(info["VhdFormat"], "Raw");
        EXPECT_EQ(info["VhdType"], "Fixed");
        EXPECT_EQ(info["Size"], 1u << 20);
        EXPECT_EQ(info["FileSize"], 1u << 20);
        EXPECT_EQ(info["BlockSize"], 0);
        EXPECT_TRUE(info["DiskIdentifier"].is_null());
    }

    for (const char* name : {"fixed.vhd", "small.vhd", "child.vhd", "dynamic.vhdx", "4k.vhdx", "fixed.vhdx",
                             "disk.img"}) {
        auto result = run({"test-vhd", path(name)});
        EXPECT_EQ(result.code, exit_ok) << name << ": " << result.err;
        EXPECT_EQ(result.out, path(name) + ": OK\n");
    }
}

TEST_F(CliDiskTest, GetVhdTableIsAKeyValueList)
{
    ASSERT_EQ(run({"new-vhd", path("d.img"), "--size", "1M"}).code, exit_ok);
    auto result = run({"get-vhd", path("d.img")});
    ASSERT_EQ(result.code, exit_ok);
    EXPECT_EQ(result.out, "Path               : " + path("d.img") + "\n"
                          "VhdFormat          : Raw\n"
                          "VhdType            : Fixed\n"
                          "FileSize           : 1048576\n"
                          "Size               : 1048576\n"
                          "LogicalSectorSize  : 512\n"
                          "PhysicalSectorSize : 512\n"
                          "BlockSize          : 0\n"
                          "ParentPath         :\n"
                          "DiskIdentifier     :\n");
    EXPECT_EQ(run({"get-vhd", path("d.img"), "--format", "xml"}).code, exit_error);
    EXPECT_EQ(run({"get-vhd", path("missing.vhd")}).code, exit_error);
}

TEST_F(CliDiskTest, TestVhdFindsCorruption)
{
    ASSERT_EQ(run({"new-vhd", path("bad.vhdx"), "--size", "8M"}).code, exit_ok);
    {
        std::fstream file(path("bad.vhdx"), std::ios::in | std::ios::out | std::ios::binary);
        file.write("XXXXXXXX", 8); // the "vhdxfile" signature
    }
    auto result = run({"test-vhd", path("bad.vhdx")});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_TRUE(result.out.empty());
    EXPECT_TRUE(result.err.starts_with("vmgen: error: ")) << result.err;
    EXPECT_NE(result.err.find("vhdxfile"), std::string::npos) << result.err;

    ASSERT_EQ(run({"new-vhd", path("bad.vhd"), "--size", "8M", "--fixed"}).code, exit_ok);
    std::filesystem::resize_file(path("bad.vhd"), (8u << 20) + 100); // footer cut short
    result = run({"test-vhd", path("bad.vhd")});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_TRUE(result.err.starts_with("vmgen: error: ")) << result.err;

    result = run({"test-vhd", path("missing.img")});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_NE(result.err.find("no such file"), std::string::npos) << result.err;
}

TEST_F(CliDiskTest, NewVhdErrorsCreateNothing)
{
    ASSERT_EQ(run({"new-vhd", path("parent.vhd"), "--size", "8M"}).code, exit_ok);
    ASSERT_EQ(run({"new-vhd", path("p.vhdx"), "--size", "8M"}).code, exit_ok);
    auto file = path("x.vhd");
    auto vhdx = path("x.vhdx");
    auto raw = path("x.img");
    expect_failure({"new-vhd", file}, "needs --size", file);
    expect_failure({"new-vhd", file, "--size", "lots"}, "invalid memory size", file);
    expect_failure({"new-vhd", file, "--size", "1000"}, "multiple of the logical sector size", file);
    expect_failure({"new-vhd", file, "--size", "3000G"}, "2040 GiB", file);
    expect_failure({"new-vhd", file, "--size", "8M", "--fixed", "--dynamic"}, "choose one", file);
    expect_failure({"new-vhd", file, "--size", "8M", "--block-size", "3M"}, "power of two", file);
    expect_failure({"new-vhd", file, "--size", "8M", "--fixed", "--block-size", "1M"}, "no block size", file);
    expect_failure({"new-vhd", file, "--size", "8M", "--logical-sector", "4096"}, "only for VHDX", file);
    expect_failure({"new-vhd", vhdx, "--size", "8M", "--logical-sector", "1024"}, "512 or 4096", vhdx);
    expect_failure({"new-vhd", file, "--differencing"}, "needs --parent", file);
    expect_failure({"new-vhd", file, "--differencing", "--parent", path("none.vhd")}, "no such file", file);
    expect_failure({"new-vhd", file, "--differencing", "--parent", path("p.vhdx")}, "must be a VHD", file);
    expect_failure({"new-vhd", file, "--differencing", "--parent", path("parent.vhd"), "--size", "8M"},
                   "parent's size", file);
    expect_failure({"new-vhd", file, "--size", "8M", "--parent", path("parent.vhd")}, "only for --differencing",
                   file);
    expect_failure({"new-vhd", vhdx, "--differencing", "--parent", path("parent.vhd")},
                   "the parent of a differencing VHDX must be a VHDX", vhdx);
    expect_failure({"new-vhd", raw, "--size", "8M", "--block-size", "1M"}, "no block size", raw);
    expect_failure({"new-vhd", raw, "--size", "8M", "--dynamic"}, "no dynamic type", raw);
    expect_failure({"new-vhd", raw, "--differencing", "--parent", path("parent.vhd")}, "cannot be differencing",
                   raw);
    expect_failure({"new-vhd", vhdx, "--size", "8M", "--block-size", "3M"}, "power of two", vhdx);
    expect_failure({"new-vhd", path("no/such/dir.vhd"), "--size", "8M"}, "", path("no/such/dir.vhd"));

    // An existing file is refused and left as it was.
    auto before = std::filesystem::file_size(path("parent.vhd"));
    auto result = run({"new-vhd", path("parent.vhd"), "--size", "1G"});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_NE(result.err.find("already exists"), std::string::npos) << result.err;
    EXPECT_EQ(std::filesystem::file_size(path("parent.vhd")), before);
    EXPECT_EQ(get_json(path("parent.vhd"))["Size"], 8u << 20);
}

// Writes `bytes` of `value` at `offset` through the library's own file I/O: a raw image only.
void poke_raw(const std::string& file, uint64_t offset, size_t bytes, char value)
{
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    const std::string data(bytes, value);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string slurp(const std::string& file)
{
    std::ifstream f(file, std::ios::binary);
    std::ostringstream text;
    text << f.rdbuf();
    return text.str();
}

TEST_F(CliDiskTest, ConvertVhdBetweenFormatsAndTypes)
{
    ASSERT_EQ(run({"new-vhd", path("src.img"), "--size", "8M"}).code, exit_ok);
    poke_raw(path("src.img"), 4096, 8192, 'a');
    poke_raw(path("src.img"), (8u << 20) - 512, 512, 'z');

    auto result = run({"convert-vhd", path("src.img"), path("d.vhdx")});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("VhdFormat          : VHDX\n"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("VhdType            : Fixed\n"), std::string::npos) << result.out; // the source's
    EXPECT_TRUE(result.err.empty()) << result.err; // no progress bar: not a terminal

    result = run({"convert-vhd", path("d.vhdx"), path("d.vhd"), "--vhd-type", "Dynamic"});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_EQ(get_json(path("d.vhd"))["VhdType"], "Dynamic");
    ASSERT_EQ(run({"convert-vhd", path("d.vhd"), path("back.img")}).code, exit_ok);
    EXPECT_TRUE(slurp(path("back.img")) == slurp(path("src.img")));

    result = run({"convert-vhd", path("src.img"), path("4k.vhdx"), "--logical-sector", "4096", "--vhd-type",
                  "dynamic", "--block-size", "1M"});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    auto info = get_json(path("4k.vhdx"));
    EXPECT_EQ(info["LogicalSectorSize"], 4096);
    EXPECT_EQ(info["BlockSize"], 1u << 20);
    EXPECT_EQ(run({"test-vhd", path("4k.vhdx")}).code, exit_ok);

    expect_failure({"convert-vhd", path("src.img")}, "a source and a destination", path("x.vhd"));
    expect_failure({"convert-vhd", path("src.img"), path("x.vhd"), "--vhd-type", "sparse"}, "fixed or dynamic",
                   path("x.vhd"));
    expect_failure({"convert-vhd", path("src.img"), path("x.img"), "--vhd-type", "dynamic"}, "no dynamic type",
                   path("x.img"));
    expect_failure({"convert-vhd", path("missing.vhd"), path("x.vhd")}, "no such file", path("x.vhd"));
    expect_failure({"convert-vhd", path("src.img"), path("x.vhd"), "--logical-sector", "4096"}, "512-byte sectors",
                   path("x.vhd"));
    result = run({"convert-vhd", path("src.img"), path("d.vhd")});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_NE(result.err.find("already exists"), std::string::npos) << result.err;
}

TEST_F(CliDiskTest, ConvertVhdDrawsAProgressBarOnATerminal)
{
    m_context.show_progress = true;
    ASSERT_EQ(run({"new-vhd", path("src.img"), "--size", "64M"}).code, exit_ok);
    poke_raw(path("src.img"), 0, 1 << 20, 'q');
    auto result = run({"convert-vhd", path("src.img"), path("d.vhdx")});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_TRUE(result.err.starts_with("\rConverting [")) << result.err;
    EXPECT_NE(result.err.find("100%  64.0 MiB / 64.0 MiB"), std::string::npos) << result.err;
    EXPECT_EQ(result.err.back(), '\n');
    result = run({"test-vhd", path("d.vhdx")});
    EXPECT_EQ(result.code, exit_ok);
    EXPECT_TRUE(result.err.starts_with("\rChecking [")) << result.err;
}

TEST_F(CliDiskTest, ResizeVhdGrowsAndGuardsShrinking)
{
    ASSERT_EQ(run({"new-vhd", path("r.vhdx"), "--size", "8M"}).code, exit_ok);
    auto result = run({"resize-vhd", path("r.vhdx"), "--size", "64M"});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("Size               : 67108864\n"), std::string::npos) << result.out;
    EXPECT_EQ(get_json(path("r.vhdx"))["Size"], 64u << 20);

    ASSERT_EQ(run({"new-vhd", path("r.img"), "--size", "8M"}).code, exit_ok);
    poke_raw(path("r.img"), 6u << 20, 4096, 'x');
    result = run({"resize-vhd", path("r.img"), "--size", "4M"});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_NE(result.err.find("stored data"), std::string::npos) << result.err;
    EXPECT_EQ(get_json(path("r.img"))["Size"], 8u << 20);
    result = run({"resize-vhd", path("r.img"), "--size", "4M", "--allow-data-loss"});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_EQ(get_json(path("r.img"))["Size"], 4u << 20);

    EXPECT_EQ(run({"resize-vhd", path("r.img")}).code, exit_error);
    EXPECT_EQ(run({"resize-vhd", path("r.img"), "--size", "1000"}).code, exit_error);
    EXPECT_EQ(run({"resize-vhd", path("missing.vhd"), "--size", "8M"}).code, exit_error);
}

TEST_F(CliDiskTest, MergeVhdFoldsTheChildIntoItsParent)
{
    ASSERT_EQ(run({"new-vhd", path("base.vhd"), "--size", "8M"}).code, exit_ok);
    ASSERT_EQ(run({"new-vhd", path("child.vhd"), "--differencing", "--parent", path("base.vhd")}).code, exit_ok);
    ASSERT_EQ(run({"convert-vhd", path("child.vhd"), path("before.img")}).code, exit_ok);
    auto result = run({"merge-vhd", path("child.vhd")});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("Path               : " + path("base.vhd") + "\n"), std::string::npos) << result.out;
    EXPECT_FALSE(std::filesystem::exists(path("child.vhd")));
    // The same with VHDX, through a chain of two.
    ASSERT_EQ(run({"new-vhd", path("base.vhdx"), "--size", "8M", "--block-size", "1M"}).code, exit_ok);
    ASSERT_EQ(run({"new-vhd", path("mid.vhdx"), "--differencing", "--parent", path("base.vhdx")}).code, exit_ok);
    ASSERT_EQ(run({"new-vhd", path("top.vhdx"), "--differencing", "--parent", path("mid.vhdx")}).code, exit_ok);
    EXPECT_EQ(get_json(path("top.vhdx"))["VhdType"], "Differencing");
    EXPECT_EQ(get_json(path("top.vhdx"))["ParentPath"], path("mid.vhdx"));
    EXPECT_EQ(run({"test-vhd", path("top.vhdx")}).code, exit_ok);
    result = run({"merge-vhd", path("top.vhdx")});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("VhdType            : Differencing\n"), std::string::npos) << result.out;
    EXPECT_FALSE(std::filesystem::exists(path("top.vhdx")));
    ASSERT_EQ(run({"merge-vhd", path("mid.vhdx")}).code, exit_ok);
    EXPECT_EQ(get_json(path("base.vhdx"))["VhdType"], "Dynamic");

    result = run({"merge-vhd", path("base.vhd")});
    EXPECT_EQ(result.code, exit_error);
    EXPECT_NE(result.err.find("not a differencing disk"), std::string::npos) << result.err;
    EXPECT_EQ(run({"merge-vhd"}).code, exit_error);
}

// The space reclaiming itself is tested in vm/disk/disk_ops_test.cc; here the command's output and errors.
TEST_F(CliDiskTest, OptimizeVhdReportsTheFileSizes)
{
    ASSERT_EQ(run({"new-vhd", path("src.img"), "--size", "32M"}).code, exit_ok);
    poke_raw(path("src.img"), 0, 4096, 'a');
    ASSERT_EQ(run({"convert-vhd", path("src.img"), path("o.vhdx"), "--vhd-type", "dynamic", "--block-size", "1M"})
                  .code,
              exit_ok);
    const auto before = get_json(path("o.vhdx"))["FileSize"].get<uint64_t>();
    auto result = run({"optimize-vhd", path("o.vhdx")});
    ASSERT_EQ(result.code, exit_ok) << result.err;
    EXPECT_NE(result.out.find("FileSizeBefore     : " + std::to_string(before) + "\n"), std::string::npos)
        << result.out;
    EXPECT_NE(result.out.find("FileSize           : " + std::to_string(before) + "\n"), std::string::npos)
        << result.out; // nothing to release: one block of data
    EXPECT_EQ(run({"test-vhd", path("o.vhdx")}).code, exit_ok);
    EXPECT_EQ(run({"optimize-vhd", path("missing.vhdx")}).code, exit_error);
    EXPECT_EQ(run({"optimize-vhd"}).code, exit_error);
}

} // namespace
} // namespace vmgen::mgmt
