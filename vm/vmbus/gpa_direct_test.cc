#include "vm/vmbus/gpa_direct.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace vmgen::vm::vmbus {
namespace {

struct TestRange {
    uint32_t byte_count = 0;
    uint32_t byte_offset = 0;
    std::vector<uint64_t> pfns;
};

void put32(std::vector<uint8_t>& out, uint32_t v)
{
    size_t at = out.size();
    out.resize(at + 4);
    std::memcpy(out.data() + at, &v, 4);
}
void put64(std::vector<uint8_t>& out, uint64_t v)
{
    size_t at = out.size();
    out.resize(at + 8);
    std::memcpy(out.data() + at, &v, 8);
}

// A type-9 header as Linux lays it out: reserved, range_count, then the ranges back to back.
std::vector<uint8_t> make_header(const std::vector<TestRange>& ranges, uint32_t range_count = UINT32_MAX)
{
    std::vector<uint8_t> out;
    put32(out, 0);
    put32(out, range_count == UINT32_MAX ? static_cast<uint32_t>(ranges.size()) : range_count);
    for (auto& r : ranges) {
        put32(out, r.byte_count);
        put32(out, r.byte_offset);
        for (uint64_t pfn : r.pfns)
            put64(out, pfn);
    }
    return out;
}

std::vector<std::span<uint8_t>> segments(const GpaRanges& g, const GuestMemory& memory, uint64_t offset,
                                         uint64_t length)
{
    std::vector<std::span<uint8_t>> out;
    auto r = g.for_each_segment(memory, offset, length, [&](std::span<uint8_t> s) -> Result<void> {
        out.push_back(s);
        return {};
    });
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return out;
}

bool error_contains(const Result<GpaRanges>& r, const std::string& needle)
{
    return !r && r.error().message().find(needle) != std::string::npos;
}

class GpaDirectTest : public ::testing::Test {
protected:
    GpaDirectTest() : memory(std::move(*GuestMemory::create({{0, 4ull << 20}}))) {}
    uint8_t* host(uint64_t gpa) { return memory.span(gpa, 1)->data(); }
    GuestMemory memory;
};

TEST_F(GpaDirectTest, SinglePage)
{
    auto g = parse_gpa_direct(make_header({{4096, 0, {5}}}));
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->total_bytes(), 4096u);
    ASSERT_EQ(g->ranges().size(), 1u);
    EXPECT_EQ(g->pfns(g->ranges()[0]).size(), 1u);
    auto segs = segments(*g, memory, 0, 4096);
    ASSERT_EQ(segs.size(), 1u);
    EXPECT_EQ(segs[0].data(), host(5 * 4096));
    EXPECT_EQ(segs[0].size(), 4096u);
    EXPECT_TRUE(g->validate(memory));
}

TEST_F(GpaDirectTest, OffsetWithinFirstPage)
{
    // storvsc: 5000 bytes starting 512 bytes into pfn 7 -> two PFNs.
    auto g = parse_gpa_direct(make_header({{5000, 512, {7, 8}}}));
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->total_bytes(), 5000u);
    auto segs = segments(*g, memory, 0, 5000);
    ASSERT_EQ(segs.size(), 1u);
    EXPECT_EQ(segs[0].data(), host(7 * 4096 + 512));
    EXPECT_EQ(segs[0].size(), 5000u);
    // A window inside the first page only.
    segs = segments(*g, memory, 100, 10);
    ASSERT_EQ(segs.size(), 1u);
    EXPECT_EQ(segs[0].data(), host(7 * 4096 + 612));
    // One PFN too few for offset + count.
    EXPECT_FALSE(parse_gpa_direct(make_header({{4096, 1, {7}}})));
}

TEST_F(GpaDirectTest, ContiguousPagesMergeIntoOneSpan)
{
    std::vector<uint64_t> pfns(64);
    std::iota(pfns.begin(), pfns.end(), uint64_t {100});
    auto g = parse_gpa_direct(make_header({{64 * 4096 - 100, 100, pfns}}));
    ASSERT_TRUE(g) << g.error().message();
    auto segs = segments(*g, memory, 0, g->total_bytes());
    ASSERT_EQ(segs.size(), 1u);
    EXPECT_EQ(segs[0].data(), host(100 * 4096 + 100));
    EXPECT_EQ(segs[0].size(), 64u * 4096 - 100);
    auto iov = g->iovecs(memory, 0, g->total_bytes());
    ASSERT_TRUE(iov);
    ASSERT_EQ(iov->size(), 1u);
    EXPECT_EQ(iov->at(0).iov_base, host(100 * 4096 + 100));
    EXPECT_EQ(iov->at(0).iov_len, 64u * 4096 - 100);
}

TEST_F(GpaDirectTest, NonContiguousPages)
{
    auto g = parse_gpa_direct(make_header({{4 * 4096, 0, {10, 11, 30, 20}}}));
    ASSERT_TRUE(g);
    auto segs = segments(*g, memory, 0, 4 * 4096);
    ASSERT_EQ(segs.size(), 3u);
    EXPECT_EQ(segs[0].data(), host(10 * 4096));
    EXPECT_EQ(segs[0].size(), 2u * 4096);
    EXPECT_EQ(segs[1].data(), host(30 * 4096));
    EXPECT_EQ(segs[1].size(), 4096u);
    EXPECT_EQ(segs[2].data(), host(20 * 4096));
    EXPECT_EQ(segs[2].size(), 4096u);
}

TEST_F(GpaDirectTest, MultipleRangesAndWindowsAcrossThem)
{
    // netvsc style: single-page fragments, plus a multi-page range; range 1 continues range 0 physically.
    auto header = make_header({{96, 4000, {50}}, {4096, 0, {51}}, {300, 10, {60}}, {8192, 4095, {70, 71, 90}}});
    header.resize(header.size() + 8); // trailing padding is allowed
    auto g = parse_gpa_direct(header);
    ASSERT_TRUE(g) << g.error().message();
    ASSERT_EQ(g->ranges().size(), 4u);
    EXPECT_EQ(g->total_bytes(), 96u + 4096 + 300 + 8192);
    EXPECT_EQ(g->ranges()[2].transfer_offset, 4192u);
    EXPECT_EQ(g->ranges()[3].transfer_offset, 4492u);

    auto all = segments(*g, memory, 0, g->total_bytes());
    ASSERT_EQ(all.size(), 4u);
    // Ranges 0 and 1 are host-adjacent (50*4096+4000+96 == 51*4096) and merge.
    EXPECT_EQ(all[0].data(), host(50 * 4096 + 4000));
    EXPECT_EQ(all[0].size(), 4192u);
    EXPECT_EQ(all[1].data(), host(60 * 4096 + 10));
    EXPECT_EQ(all[1].size(), 300u);
    EXPECT_EQ(all[2].data(), host(70 * 4096 + 4095));
    EXPECT_EQ(all[2].size(), 1u + 4096);
    EXPECT_EQ(all[3].data(), host(90 * 4096));
    EXPECT_EQ(all[3].size(), 8192u - 4097);

    // A window in the middle: last 50 bytes of range 1, all of range 2, first 2 bytes of range 3.
    auto mid = segments(*g, memory, 4192 - 50, 50 + 300 + 2);
    ASSERT_EQ(mid.size(), 3u);
    EXPECT_EQ(mid[0].data(), host(51 * 4096 + 4046));
    EXPECT_EQ(mid[0].size(), 50u);
    EXPECT_EQ(mid[1].size(), 300u);
    EXPECT_EQ(mid[2].data(), host(70 * 4096 + 4095));
    EXPECT_EQ(mid[2].size(), 2u);

    // Windows beyond the transfer.
    auto nothing = [](std::span<uint8_t>) -> Result<void> { return {}; };
    EXPECT_TRUE(g->for_each_segment(memory, g->total_bytes(), 0, nothing));
    EXPECT_FALSE(g->for_each_segment(memory, g->total_bytes(), 1, nothing));
    EXPECT_FALSE(g->for_each_segment(memory, 1, g->total_bytes(), nothing));
    EXPECT_FALSE(g->for_each_segment(memory, UINT64_MAX, 2, nothing));
    EXPECT_FALSE(g->for_each_segment(memory, 2, UINT64_MAX, nothing));
    EXPECT_FALSE(g->iovecs(memory, 0, g->total_bytes() + 1));

    // The iovec cap.
    EXPECT_TRUE(g->iovecs(memory, 0, g->total_bytes(), 4));
    auto capped = g->iovecs(memory, 0, g->total_bytes(), 3);
    ASSERT_FALSE(capped);
    EXPECT_NE(capped.error().message().find("more than 3 iovecs"), std::string::npos);

    // A callback error stops the walk.
    int calls = 0;
    auto r = g->for_each_segment(memory, 0, g->total_bytes(), [&](std::span<uint8_t>) -> Result<void> {
        ++calls;
        return fail("stop");
    });
    EXPECT_FALSE(r);
    EXPECT_EQ(calls, 1);
}

TEST_F(GpaDirectTest, CopyRoundTrips)
{
    auto g = parse_gpa_direct(make_header({{5000, 3000, {200, 210}}, {5000, 7, {300, 301}}}));
    ASSERT_TRUE(g);
    std::vector<uint8_t> data(g->total_bytes());
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<uint8_t>(i * 7 + 3);
    ASSERT_TRUE(g->copy_to_guest(memory, 0, data));
    // Bytes land on the right guest pages.
    EXPECT_EQ(*memory.read_obj<uint8_t>(200 * 4096 + 3000), data[0]);
    EXPECT_EQ(*memory.read_obj<uint8_t>(210 * 4096), data[4096 - 3000]);
    EXPECT_EQ(*memory.read_obj<uint8_t>(300 * 4096 + 7), data[5000]);
    EXPECT_EQ(*memory.read_obj<uint8_t>(301 * 4096 + (5000 + 7 - 4096 - 1)), data.back());
    // Neighbours untouched.
    EXPECT_EQ(*memory.read_obj<uint8_t>(200 * 4096 + 2999), 0);
    EXPECT_EQ(*memory.read_obj<uint8_t>(300 * 4096 + 6), 0);
    EXPECT_EQ(*memory.read_obj<uint8_t>(301 * 4096 + (5000 + 7 - 4096)), 0);

    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(g->copy_from_guest(memory, 0, back));
    EXPECT_EQ(back, data);
    // A sub-window across the range boundary.
    std::vector<uint8_t> part(100);
    ASSERT_TRUE(g->copy_from_guest(memory, 4950, part));
    EXPECT_TRUE(std::equal(part.begin(), part.end(), data.begin() + 4950));
    std::vector<uint8_t> patch(10, 0xee);
    ASSERT_TRUE(g->copy_to_guest(memory, 4995, patch));
    EXPECT_EQ(*memory.read_obj<uint8_t>(210 * 4096 + 3899), 0xee);
    EXPECT_EQ(*memory.read_obj<uint8_t>(300 * 4096 + 7 + 4), 0xee);
    // Past the end.
    EXPECT_FALSE(g->copy_to_guest(memory, g->total_bytes() - 5, patch));
    EXPECT_FALSE(g->copy_from_guest(memory, g->total_bytes() - 5, part));
}

TEST_F(GpaDirectTest, MalformedHeaders)
{
    EXPECT_TRUE(error_contains(parse_gpa_direct({}), "truncated"));
    std::vector<uint8_t> seven(7);
    EXPECT_TRUE(error_contains(parse_gpa_direct(seven), "truncated"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({})), "no ranges"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1}}}, 0)), "no ranges"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1}}}, max_gpa_ranges + 1)), "ranges, at most"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1}}}, UINT32_MAX - 1)), "ranges, at most"));
    // Count says 2, one present: the second range head is missing.
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1}}}, 2)), "range 1 of 2 truncated"));
    // Range head cut in the middle.
    auto cut = make_header({{1, 0, {1}}});
    cut.resize(12);
    EXPECT_TRUE(error_contains(parse_gpa_direct(cut), "truncated"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 4096, {1, 2}}})), "byte offset 4096"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, UINT32_MAX, {1}}})), "byte offset"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{0, 0, {1}}})), "range 0 is empty"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1}}, {0, 0, {}}})), "range 1 is empty"));
    // PFN array past the header end: 8193 bytes need 3 PFNs.
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{8193, 0, {1, 2}}})), "run past the end"));
    auto partial_pfn = make_header({{4096, 0, {1}}});
    partial_pfn.pop_back();
    EXPECT_TRUE(error_contains(parse_gpa_direct(partial_pfn), "run past the end"));
    // Overflowing sizes: a byte count near 2^32 (page count computed in 64 bits) with no PFN array to back it.
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{UINT32_MAX, 4095, {1}}})), "transfer limit"));
    // Total over the limit across ranges, each under it.
    uint32_t big = static_cast<uint32_t>(max_gpa_transfer_bytes / 2);
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{big, 0, std::vector<uint64_t>(big / 4096, 1)},
                                                              {big, 0, std::vector<uint64_t>(big / 4096, 1)},
                                                              {1, 0, {1}}})),
                               "transfer limit"));
    // Exactly at the limit is accepted.
    EXPECT_TRUE(parse_gpa_direct(make_header({{big, 0, std::vector<uint64_t>(big / 4096, 1)},
                                              {big, 0, std::vector<uint64_t>(big / 4096, 1)}})));
    // A PFN beyond the physical address space (its GPA would overflow).
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {1ull << 52}}})), "physical address space"));
    EXPECT_TRUE(error_contains(parse_gpa_direct(make_header({{1, 0, {UINT64_MAX}}})), "physical address space"));
    // The most ranges accepted.
    std::vector<TestRange> many(max_gpa_ranges, TestRange {1, 0, {1}});
    auto g = parse_gpa_direct(make_header(many));
    ASSERT_TRUE(g);
    EXPECT_EQ(g->total_bytes(), max_gpa_ranges);
    // Identical single-byte pages are not merged (same host address, not adjacent).
    auto iov = g->iovecs(memory, 0, g->total_bytes(), max_gpa_ranges);
    ASSERT_TRUE(iov);
    EXPECT_EQ(iov->size(), max_gpa_ranges);
}

TEST_F(GpaDirectTest, PfnsOutsideRam)
{
    // 4 MiB RAM: pfn 1024 is the first page beyond it.
    auto g = parse_gpa_direct(make_header({{3 * 4096, 0, {1022, 1023, 1024}}}));
    ASSERT_TRUE(g);
    auto bad = g->validate(memory);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("0x400"), std::string::npos) << bad.error().message();
    // The in-RAM part is reachable; anything touching pfn 1024 fails and names it.
    EXPECT_TRUE(g->iovecs(memory, 0, 2 * 4096));
    auto iov = g->iovecs(memory, 4096, 4097);
    ASSERT_FALSE(iov);
    EXPECT_NE(iov.error().message().find("PFN 0x400"), std::string::npos) << iov.error().message();
    std::vector<uint8_t> buf(10);
    EXPECT_FALSE(g->copy_to_guest(memory, 3 * 4096 - 10, buf));
    EXPECT_FALSE(g->copy_from_guest(memory, 3 * 4096 - 10, buf));

    auto huge = parse_gpa_direct(make_header({{1, 0, {max_gpa_pfn}}}));
    ASSERT_TRUE(huge);
    EXPECT_FALSE(huge->validate(memory));
    EXPECT_FALSE(huge->iovecs(memory, 0, 1));
}

TEST(GpaDirectHole, PfnInMmioHole)
{
    // RAM at [0, 1 MiB) and [2 MiB, 3 MiB): pages 256..511 are a hole.
    auto memory = GuestMemory::create({{0, 1ull << 20}, {2ull << 20, 1ull << 20}});
    ASSERT_TRUE(memory);
    auto g = parse_gpa_direct(make_header({{3 * 4096, 0, {255, 300, 512}}}));
    ASSERT_TRUE(g);
    auto bad = g->validate(*memory);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("PFN 0x12c"), std::string::npos) << bad.error().message();
    auto iov = g->iovecs(*memory, 0, 3 * 4096);
    ASSERT_FALSE(iov);
    EXPECT_NE(iov.error().message().find("PFN 0x12c"), std::string::npos) << iov.error().message();
    EXPECT_TRUE(g->iovecs(*memory, 0, 4096));
    EXPECT_TRUE(g->iovecs(*memory, 2 * 4096, 4096));

    // Pages on both sides of the hole: the data goes to the right regions.
    auto across = parse_gpa_direct(make_header({{2 * 4096, 0, {255, 512}}}));
    ASSERT_TRUE(across);
    EXPECT_TRUE(across->validate(*memory));
    std::vector<uint8_t> data(2 * 4096);
    std::iota(data.begin(), data.end(), uint8_t {1});
    ASSERT_TRUE(across->copy_to_guest(*memory, 0, data));
    EXPECT_EQ(*memory->read_obj<uint8_t>(255 * 4096), data[0]);
    EXPECT_EQ(*memory->read_obj<uint8_t>(512 * 4096), data[4096]);
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(across->copy_from_guest(*memory, 0, back));
    EXPECT_EQ(back, data);
}

} // namespace
} // namespace vmgen::vm::vmbus
