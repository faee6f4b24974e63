#include "support/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace vmgen {
namespace {

Result<int> parse_positive(int v)
{
    if (v <= 0)
        return fail("{} is not positive", v);
    return v;
}

Result<int> doubled(int v)
{
    int x = TRY(parse_positive(v));
    return x * 2;
}

Result<void> check(int v)
{
    TRY_CTX(parse_positive(v), "checking {}", v);
    return {};
}

Result<std::unique_ptr<int>> make_box(int v)
{
    if (v < 0)
        return fail("negative");
    return std::make_unique<int>(v);
}

Result<int> unbox(int v)
{
    auto box = TRY(make_box(v));
    return *box;
}

TEST(Result, ValuePropagates) { EXPECT_EQ(*doubled(21), 42); }

TEST(Result, ErrorPropagatesWithMessage)
{
    auto r = doubled(-1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "-1 is not positive");
}

TEST(Result, ContextIsPrepended)
{
    auto r = check(0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "checking 0: 0 is not positive");
    EXPECT_TRUE(check(3));
}

TEST(Result, MoveOnlyValues)
{
    EXPECT_EQ(*unbox(7), 7);
    EXPECT_FALSE(unbox(-7));
}

} // namespace
} // namespace vmgen
