#include "mgmt/atomic_file.h"

#include "mgmt/temp_home.h"

#include <gtest/gtest.h>

#include <fstream>

namespace vmgen::mgmt {
namespace {

size_t count_entries(const std::filesystem::path& dir)
{
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir))
        ++n;
    return n;
}

TEST(AtomicFile, WritesAndReplacesWithoutTempFiles)
{
    TempHome home;
    auto path = home.path() / "config.json";
    ASSERT_TRUE(write_file_atomically(path, "first"));
    EXPECT_EQ(*read_small_file(path), "first");
    ASSERT_TRUE(write_file_atomically(path, "second, longer"));
    EXPECT_EQ(*read_small_file(path), "second, longer");
    EXPECT_EQ(count_entries(home.path()), 1u);
}

TEST(AtomicFile, FailureLeavesNothingBehind)
{
    TempHome home;
    auto missing = home.path() / "no-such-dir" / "config.json";
    EXPECT_FALSE(write_file_atomically(missing, "x"));
    // Renaming onto a folder fails after the temporary file was written: it must be removed.
    std::filesystem::create_directory(home.path() / "taken");
    std::filesystem::create_directory(home.path() / "taken" / "inside");
    EXPECT_FALSE(write_file_atomically(home.path() / "taken", "x"));
    EXPECT_EQ(count_entries(home.path()), 1u);
}

TEST(ReadSmallFile, Errors)
{
    TempHome home;
    auto missing = read_small_file(home.path() / "missing");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("No such file"), std::string::npos);
    EXPECT_FALSE(read_small_file(home.path()));
    std::ofstream(home.path() / "big") << std::string(100, 'x');
    auto big = read_small_file(home.path() / "big", 10);
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message().find("too large"), std::string::npos);
}

TEST(FileLock, ExcludesOtherHolders)
{
    TempHome home;
    auto path = home.path() / ".lock";
    auto first = FileLock::acquire(path);
    ASSERT_TRUE(first);
    bool busy = false;
    auto second = FileLock::acquire(path, FileLock::Mode::TryOnce, &busy);
    EXPECT_FALSE(second);
    EXPECT_TRUE(busy);
    {
        auto moved = std::move(*first);
    }
    auto third = FileLock::acquire(path, FileLock::Mode::TryOnce, &busy);
    EXPECT_TRUE(third);
    EXPECT_FALSE(busy);
}

} // namespace
} // namespace vmgen::mgmt
