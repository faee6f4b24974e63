// new-vhd, get-vhd, test-vhd through run_cli, in-process.
#include "mgmt/cli.h"
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

struct CliResult {
    int code = 0;
    std::string out;
    std::string err;
};

class CliDiskTest : public ::testing::Test {
protected:
    CliDiskTest() { m_context.home = m_home.path() / "store"; }

    CliResult run(std::vector<std::string> args)
    {
        std::ostringstream out;
        std::ostringstream err;
        CliResult result;
        result.code = run_cli(args, out, err, m_context);
        result.out = out.str();
        result.err = err.str();
        return result;
    }

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
    for (const char* name : {"new-vhd", "get-vhd", "test-vhd"})
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
                   "differencing VHDX images are not implemented", vhdx);
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

} // namespace
} // namespace vmgen::mgmt
