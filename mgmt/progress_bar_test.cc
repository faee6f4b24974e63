#include "mgmt/progress_bar.h"

#include <gtest/gtest.h>

#include <sstream>

namespace vmgen::mgmt {
namespace {

TEST(ProgressBar, RendersFractionPercentAndSizes)
{
    EXPECT_EQ(ProgressBar::render("Converting", 0, 4ull << 30),
              "Converting [------------------------------]   0%  0 B / 4.0 GiB");
    EXPECT_EQ(ProgressBar::render("Converting", 2ull << 30, 4ull << 30),
              "Converting [###############---------------]  50%  2.0 GiB / 4.0 GiB");
    EXPECT_EQ(ProgressBar::render("Merging", 4ull << 30, 4ull << 30),
              "Merging [##############################] 100%  4.0 GiB / 4.0 GiB");
    // Past the end is clamped; a zero total is complete.
    EXPECT_EQ(ProgressBar::render("x", 9, 4), "x [##############################] 100%  4 B / 4 B");
    EXPECT_EQ(ProgressBar::render("x", 0, 0), "x [##############################] 100%  0 B / 0 B");
}

TEST(ProgressBar, HumanBytes)
{
    EXPECT_EQ(human_bytes(0), "0 B");
    EXPECT_EQ(human_bytes(1023), "1023 B");
    EXPECT_EQ(human_bytes(1536), "1.5 KiB");
    EXPECT_EQ(human_bytes(64ull << 30), "64.0 GiB");
    EXPECT_EQ(human_bytes(3ull << 40), "3.0 TiB");
}

TEST(ProgressBar, DisabledPrintsNothing)
{
    std::ostringstream out;
    {
        ProgressBar bar(out, false, "Converting");
        EXPECT_FALSE(bar.callback());
        bar.update(1, 2);
        bar.update(2, 2);
    }
    EXPECT_EQ(out.str(), "");
}

TEST(ProgressBar, EnabledRedrawsInPlaceThrottledAndEndsTheLine)
{
    std::ostringstream out;
    ProgressBar bar(out, true, "Checking");
    auto callback = bar.callback();
    ASSERT_TRUE(callback);
    callback(0, 100);
    for (uint64_t i = 1; i < 100; ++i)
        callback(i, 100); // within 100 ms of the first drawing: not drawn
    callback(100, 100);   // the end is always drawn
    bar.finish();
    bar.finish();
    const std::string text = out.str();
    EXPECT_EQ(text.find('\r'), 0u);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 2);
    EXPECT_NE(text.find("100%"), std::string::npos);
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
}

} // namespace
} // namespace vmgen::mgmt
