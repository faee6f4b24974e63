#include "vm/vmbus/ring_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

namespace vmgen::vm::vmbus {
namespace {

namespace wire = protocols::vmbus;

class RingTest : public ::testing::Test {
protected:
    RingTest() : memory(std::move(*GuestMemory::create({{0, 4ull << 20}}))) {}

    uint32_t control(uint64_t pfn, uint32_t offset) { return *memory.read_obj<uint32_t>(pfn * 4096 + offset); }
    void set_control(uint64_t pfn, uint32_t offset, uint32_t value)
    {
        ASSERT_TRUE(memory.write_obj(pfn * 4096 + offset, value));
    }

    GuestMemory memory;
};

TEST_F(RingTest, PageListMergesContiguousPagesAndChecksBounds)
{
    std::vector<uint64_t> contiguous {16, 17, 18};
    auto view = PageListView::create(memory, contiguous);
    ASSERT_TRUE(view);
    EXPECT_EQ(view->run_count(), 1u);
    EXPECT_EQ(view->size(), 3u * 4096);

    std::vector<uint64_t> scattered {40, 20, 21, 30};
    auto s = PageListView::create(memory, scattered);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->run_count(), 3u);
    std::vector<uint8_t> data(3 * 4096);
    std::iota(data.begin(), data.end(), uint8_t {0});
    ASSERT_TRUE(s->write(2048, data));
    // Bytes land on the right guest pages.
    EXPECT_EQ(*memory.read_obj<uint8_t>(40 * 4096 + 2048), data[0]);
    EXPECT_EQ(*memory.read_obj<uint8_t>(20 * 4096), data[2048]);
    EXPECT_EQ(*memory.read_obj<uint8_t>(30 * 4096 + 2047), data[3 * 4096 - 1]);
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(s->read(2048, back));
    EXPECT_EQ(back, data);

    std::vector<uint8_t> one(1);
    EXPECT_FALSE(s->read(4 * 4096, one));
    EXPECT_FALSE(s->read(UINT64_MAX, one));
    EXPECT_FALSE(s->write(4 * 4096 - 1, std::span<const uint8_t>(data).first(2)));

    std::vector<uint64_t> outside {5, 1024}; // 4 MiB RAM: pfn 1024 is beyond it
    EXPECT_FALSE(PageListView::create(memory, outside));
    std::vector<uint64_t> huge {1ull << 60};
    EXPECT_FALSE(PageListView::create(memory, huge));
}

// Writer and reader on the same ring: the host writes, the host reads (round trip through guest pages).
TEST_F(RingTest, WriteThenReadWithWrapAround)
{
    std::vector<uint64_t> pfns {100, 103, 101}; // control page, 2 non-contiguous data pages
    auto writer = RingWriter::create(memory, pfns);
    auto reader = RingReader::create(memory, pfns);
    ASSERT_TRUE(writer);
    ASSERT_TRUE(reader);
    EXPECT_EQ(writer->data_size(), 8192u);
    EXPECT_EQ(control(100, wire::ring_offset_feature_bits), 1u);

    std::vector<uint8_t> payload(1000);
    for (int round = 0; round < 40; ++round) {
        std::fill(payload.begin(), payload.end(), static_cast<uint8_t>(round));
        auto status = writer->write(6, 1, 1000u + static_cast<uint64_t>(round), {}, payload);
        ASSERT_TRUE(status);
        EXPECT_NE(*status, RingWriter::WriteStatus::full);
        auto packet = reader->peek();
        ASSERT_TRUE(packet);
        ASSERT_TRUE(packet->has_value());
        const RingPacket& p = **packet;
        EXPECT_EQ(p.type, 6);
        EXPECT_EQ(p.flags, 1);
        EXPECT_EQ(p.trans_id, 1000u + static_cast<uint64_t>(round));
        ASSERT_EQ(p.payload.size(), 1000u + 0u); // len8 covers the payload padded to 8: 1000 is a multiple of 8
        EXPECT_EQ(p.payload[999], static_cast<uint8_t>(round));
        reader->consume();
        ASSERT_TRUE(reader->commit());
        auto empty = reader->peek();
        ASSERT_TRUE(empty);
        EXPECT_FALSE(empty->has_value());
    }
}

TEST_F(RingTest, TrailerHoldsPreviousWriteIndex)
{
    std::vector<uint64_t> pfns {200, 201, 202};
    set_control(200, wire::ring_offset_write_index, 64);
    set_control(200, wire::ring_offset_read_index, 64);
    auto writer = RingWriter::create(memory, pfns);
    ASSERT_TRUE(writer);
    std::vector<uint8_t> payload(5, 0xab);
    ASSERT_TRUE(writer->write(6, 0, 7, {}, payload));
    // descriptor 16 + payload padded to 8 = 24 bytes, trailer after it.
    EXPECT_EQ(control(200, wire::ring_offset_write_index), 64u + 32u);
    auto trailer = memory.read_obj<uint64_t>(201 * 4096 + 64 + 24);
    ASSERT_TRUE(trailer);
    EXPECT_EQ(*trailer, uint64_t {64} << 32);
    auto desc = memory.read_obj<wire::VmPacketDescriptor>(201 * 4096 + 64);
    EXPECT_EQ(desc->offset8, 2);
    EXPECT_EQ(desc->len8, 3);
}

TEST_F(RingTest, WriterSignalsOnlyOnEmptyToNonEmptyWithMaskClear)
{
    std::vector<uint64_t> pfns {300, 301};
    auto writer = RingWriter::create(memory, pfns);
    ASSERT_TRUE(writer);
    std::vector<uint8_t> payload(8);
    EXPECT_EQ(*writer->write(6, 0, 1, {}, payload), RingWriter::WriteStatus::written_signal);
    EXPECT_EQ(*writer->write(6, 0, 2, {}, payload), RingWriter::WriteStatus::written); // not empty before
    set_control(300, wire::ring_offset_read_index, control(300, wire::ring_offset_write_index)); // guest drained
    set_control(300, wire::ring_offset_interrupt_mask, 1);
    EXPECT_EQ(*writer->write(6, 0, 3, {}, payload), RingWriter::WriteStatus::written); // guest masked
}

TEST_F(RingTest, WriterReportsFullAndSetsPendingSendSize)
{
    std::vector<uint64_t> pfns {400, 401};
    auto writer = RingWriter::create(memory, pfns);
    ASSERT_TRUE(writer);
    std::vector<uint8_t> payload(1000);
    int written = 0;
    for (;;) {
        auto status = writer->write(6, 0, 1, {}, payload);
        ASSERT_TRUE(status);
        if (*status == RingWriter::WriteStatus::full)
            break;
        ++written;
    }
    EXPECT_EQ(written, 3); // 4096 data bytes, 1024-byte packets, never completely full
    EXPECT_EQ(control(400, wire::ring_offset_pending_send_sz), 1024u);
    // The guest consumes one packet: the next write succeeds and clears pending_send_sz.
    set_control(400, wire::ring_offset_read_index, 1024);
    auto status = writer->write(6, 0, 1, {}, payload);
    ASSERT_TRUE(status);
    EXPECT_NE(*status, RingWriter::WriteStatus::full);
    EXPECT_EQ(control(400, wire::ring_offset_pending_send_sz), 0u);
    // A packet larger than the ring can never fit.
    std::vector<uint8_t> big(5000);
    EXPECT_FALSE(writer->write(6, 0, 1, {}, big));
}

TEST_F(RingTest, ReaderSignalsWriterWhenFreeingPastPendingSendSize)
{
    std::vector<uint64_t> pfns {500, 501};
    auto writer = RingWriter::create(memory, pfns); // plays the guest writer here
    auto reader = RingReader::create(memory, pfns);
    ASSERT_TRUE(writer && reader);
    std::vector<uint8_t> payload(1000);
    for (int i = 0; i < 3; ++i)
        ASSERT_NE(*writer->write(6, 0, 1, {}, payload), RingWriter::WriteStatus::full);
    // The blocked "guest" wants 1024 bytes (feature bit set by RingWriter::create).
    set_control(500, wire::ring_offset_pending_send_sz, 1024);
    ASSERT_TRUE((*reader->peek()).has_value());
    reader->consume();
    auto signal = reader->commit();
    ASSERT_TRUE(signal);
    EXPECT_TRUE(*signal); // 1024 free before (not more than pending) -> 2048 now
    ASSERT_TRUE((*reader->peek()).has_value());
    reader->consume();
    EXPECT_FALSE(*reader->commit()); // already had enough space: no second signal
    // Without pending_send_sz no signal either.
    set_control(500, wire::ring_offset_pending_send_sz, 0);
    ASSERT_TRUE((*reader->peek()).has_value());
    reader->consume();
    EXPECT_FALSE(*reader->commit());
}

TEST_F(RingTest, ReaderMasksWhileDrainingAndRechecks)
{
    std::vector<uint64_t> pfns {600, 601};
    auto reader = RingReader::create(memory, pfns);
    ASSERT_TRUE(reader);
    reader->begin_read();
    EXPECT_EQ(control(600, wire::ring_offset_interrupt_mask), 1u);
    auto more = reader->end_read();
    ASSERT_TRUE(more);
    EXPECT_FALSE(*more);
    EXPECT_EQ(control(600, wire::ring_offset_interrupt_mask), 0u);
    set_control(600, wire::ring_offset_write_index, 24); // data arrived after the last peek
    EXPECT_TRUE(*reader->end_read());
}

TEST_F(RingTest, CorruptIndicesAndHeadersAreErrors)
{
    std::vector<uint64_t> pfns {700, 701};
    set_control(700, wire::ring_offset_read_index, 4096); // == data size
    EXPECT_FALSE(RingReader::create(memory, pfns));
    set_control(700, wire::ring_offset_read_index, 12); // unaligned
    EXPECT_FALSE(RingReader::create(memory, pfns));
    EXPECT_FALSE(RingWriter::create(memory, pfns));
    set_control(700, wire::ring_offset_read_index, 0);
    std::vector<uint64_t> too_small {700};
    EXPECT_FALSE(RingReader::create(memory, too_small));

    auto reader = RingReader::create(memory, pfns);
    ASSERT_TRUE(reader);
    set_control(700, wire::ring_offset_write_index, 0x10000); // beyond the data
    EXPECT_FALSE(reader->peek());
    set_control(700, wire::ring_offset_write_index, 8); // less than a packet available
    EXPECT_FALSE(reader->peek());

    auto put_desc = [&](uint16_t offset8, uint16_t len8) {
        wire::VmPacketDescriptor d {6, offset8, len8, 0, 0};
        ASSERT_TRUE(memory.write_obj(701 * 4096, d));
    };
    set_control(700, wire::ring_offset_write_index, 64);
    put_desc(2, 1); // offset beyond length
    EXPECT_FALSE(reader->peek());
    put_desc(1, 4); // offset inside the descriptor
    EXPECT_FALSE(reader->peek());
    put_desc(2, 8); // 64 bytes + trailer > 64 available
    EXPECT_FALSE(reader->peek());
    put_desc(2, 0xffff);
    EXPECT_FALSE(reader->peek());
    put_desc(2, 7); // 56 + 8 = 64: fits exactly
    auto ok = reader->peek();
    ASSERT_TRUE(ok);
    ASSERT_TRUE(ok->has_value());
    EXPECT_EQ((*ok)->payload.size(), 40u);

    // The writer validates the guest's read index on every write.
    auto writer = RingWriter::create(memory, std::vector<uint64_t> {800, 801});
    ASSERT_TRUE(writer);
    set_control(800, wire::ring_offset_read_index, 0xfff8 + 8);
    std::vector<uint8_t> payload(8);
    EXPECT_FALSE(writer->write(6, 0, 1, {}, payload));
    std::vector<uint8_t> bad_header(3);
    set_control(800, wire::ring_offset_read_index, 0);
    EXPECT_FALSE(writer->write(6, 0, 1, bad_header, payload));
}

} // namespace
} // namespace vmgen::vm::vmbus
