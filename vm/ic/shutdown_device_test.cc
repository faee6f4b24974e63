#include "vm/ic/shutdown_device.h"

#include "vm/ic/ic_test_guest.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace vmgen::vm::ic::testing {
namespace {

using vmbus::testing::wait_until;

std::u16string display_message(std::span<const uint8_t> payload)
{
    std::u16string text;
    size_t base = wire::ic_header_size + offsetof(wire::ShutdownMessage, display_message);
    for (size_t i = 0; i < 1024; ++i) {
        auto unit = load_at<uint16_t>(payload, base + 2 * i);
        if (unit == 0)
            break;
        text.push_back(static_cast<char16_t>(unit));
    }
    return text;
}

class ShutdownTest : public IcTest {
protected:
    void open_and_negotiate()
    {
        open(ShutdownDevice::class_guid, shutdown_instance, ch);
        ASSERT_TRUE(negotiate_like_linux(ch, shutdown, linux_shutdown_versions));
    }
    Channel ch;
};

TEST_F(ShutdownTest, RequestFailsBeforeOpenAndBeforeNegotiation)
{
    auto r = shutdown.request_shutdown(false, "Stop-VM");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("not open"), std::string::npos) << r.error().message();
    open(ShutdownDevice::class_guid, shutdown_instance, ch);
    r = shutdown.request_shutdown(false, "Stop-VM");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("not negotiated"), std::string::npos) << r.error().message();
    EXPECT_FALSE(shutdown.request_pending());
    EXPECT_FALSE(shutdown.last_status());
    // Only the NEGOTIATE went out.
    ASSERT_TRUE(receive(ch));
    EXPECT_FALSE(receive(ch, std::chrono::milliseconds(10)));
}

TEST_F(ShutdownTest, GuestAcceptsShutdown)
{
    open_and_negotiate();
    std::atomic<int> calls {0};
    std::atomic<uint32_t> seen {0xdead};
    shutdown.set_answer_callback([&](uint32_t status) {
        seen = status;
        ++calls;
    });
    ASSERT_TRUE(shutdown.request_shutdown(false, "Stop-VM from vmgen"));
    EXPECT_TRUE(shutdown.request_pending());
    auto request = receive(ch);
    ASSERT_TRUE(request);
    ASSERT_GE(request->payload.size(), wire::ic_header_size + sizeof(wire::ShutdownMessage));
    EXPECT_LE(request->payload.size(), 4096u); // hv_util reads into one page
    auto header = ic_header(request->payload);
    EXPECT_EQ(header.message_type, wire::ic_message_type_shutdown);
    EXPECT_EQ(header.flags, wire::ic_flag_transaction | wire::ic_flag_request);
    EXPECT_EQ(header.framework_version, (IcVersion {3, 0}));
    EXPECT_EQ(header.message_version, (IcVersion {3, 2}));
    EXPECT_EQ(header.message_size, sizeof(wire::ShutdownMessage));
    auto body = load_at<wire::ShutdownMessage>(request->payload, wire::ic_header_size);
    EXPECT_EQ(body.flags, 0u);
    EXPECT_EQ(display_message(request->payload), u"Stop-VM from vmgen");

    std::vector<uint8_t> answer = request->payload;
    linux_shutdown_response(answer);
    ASSERT_TRUE(reply(ch, *request, answer));
    ASSERT_TRUE(wait_until([&] { return shutdown.last_status().has_value(); }));
    EXPECT_EQ(*shutdown.last_status(), wire::hv_s_ok);
    EXPECT_FALSE(shutdown.request_pending());
    ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }));
    EXPECT_EQ(seen.load(), wire::hv_s_ok);

    // A replayed answer is dropped; the guest then powers off and closes: the answer stays readable.
    ASSERT_TRUE(reply(ch, *request, answer));
    ASSERT_TRUE(wait_dropped(shutdown, 1));
    EXPECT_EQ(calls.load(), 1);
    guest.close(ch.relid);
    EXPECT_EQ(shutdown.last_status(), wire::hv_s_ok);
    // A VMBus reset forgets it.
    server.reset();
    EXPECT_FALSE(shutdown.last_status());
}

TEST_F(ShutdownTest, ForcedRestartAndRefusal)
{
    open_and_negotiate();
    ASSERT_TRUE(shutdown.request_shutdown(true, ""));
    auto request = receive(ch);
    ASSERT_TRUE(request);
    EXPECT_EQ(load_at<wire::ShutdownMessage>(request->payload, wire::ic_header_size).flags, 1u);
    EXPECT_EQ(display_message(request->payload), u"");
    // The guest refuses (as hv_util does for requests it cannot perform).
    std::vector<uint8_t> answer = request->payload;
    linux_shutdown_response(answer);
    auto header = ic_header(answer);
    header.status = wire::hv_e_fail;
    set_ic_header(answer, header);
    ASSERT_TRUE(reply(ch, *request, answer));
    ASSERT_TRUE(wait_until([&] { return shutdown.last_status().has_value(); }));
    EXPECT_EQ(*shutdown.last_status(), wire::hv_e_fail);

    ASSERT_TRUE(shutdown.request_restart(true, "restart"));
    request = receive(ch);
    ASSERT_TRUE(request);
    EXPECT_EQ(load_at<wire::ShutdownMessage>(request->payload, wire::ic_header_size).flags, 3u);
    EXPECT_FALSE(shutdown.last_status()); // a newer request is pending
}

TEST_F(ShutdownTest, OnlyTheLatestRequestIsTracked)
{
    open_and_negotiate();
    ASSERT_TRUE(shutdown.request_shutdown(false, "first"));
    ASSERT_TRUE(shutdown.request_shutdown(true, "second"));
    auto first = receive(ch);
    auto second = receive(ch);
    ASSERT_TRUE(first && second);
    EXPECT_NE(first->desc.trans_id, second->desc.trans_id);
    EXPECT_NE(ic_header(first->payload).transaction_id, ic_header(second->payload).transaction_id);
    std::vector<uint8_t> answer = first->payload;
    linux_shutdown_response(answer);
    ASSERT_TRUE(reply(ch, *first, answer));
    // The superseded answer is consumed without a status.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(shutdown.last_status());
    EXPECT_TRUE(shutdown.request_pending());
    answer = second->payload;
    linux_shutdown_response(answer);
    ASSERT_TRUE(reply(ch, *second, answer));
    ASSERT_TRUE(wait_until([&] { return shutdown.last_status().has_value(); }));
    EXPECT_FALSE(shutdown.request_pending());
}

TEST_F(ShutdownTest, CloseWhilePendingForgetsTheRequest)
{
    open_and_negotiate();
    ASSERT_TRUE(shutdown.request_shutdown(false, "x"));
    EXPECT_TRUE(shutdown.request_pending());
    guest.close(ch.relid);
    EXPECT_FALSE(shutdown.request_pending());
    EXPECT_FALSE(shutdown.request_shutdown(false, "x"));
}

TEST(Utf16FromUtf8, EncodesAndTruncates)
{
    EXPECT_EQ(utf16_from_utf8("abc", 10), (std::vector<uint16_t> {'a', 'b', 'c'}));
    EXPECT_EQ(utf16_from_utf8("\xc3\xa9\xe2\x82\xac", 10), (std::vector<uint16_t> {0xe9, 0x20ac}));
    EXPECT_EQ(utf16_from_utf8("\xf0\x9f\x98\x80", 10), (std::vector<uint16_t> {0xd83d, 0xde00}));
    // Malformed: lone continuation, truncated sequence, overlong, surrogate code point.
    EXPECT_EQ(utf16_from_utf8("\x80x", 10), (std::vector<uint16_t> {0xfffd, 'x'}));
    EXPECT_EQ(utf16_from_utf8("\xe2\x82", 10), (std::vector<uint16_t> {0xfffd, 0xfffd}));
    EXPECT_EQ(utf16_from_utf8("\xc0\xaf", 10), (std::vector<uint16_t> {0xfffd, 0xfffd}));
    EXPECT_EQ(utf16_from_utf8("\xed\xa0\x80", 10), (std::vector<uint16_t> {0xfffd, 0xfffd, 0xfffd}));
    // Truncation never splits a surrogate pair.
    EXPECT_EQ(utf16_from_utf8("a\xf0\x9f\x98\x80", 2), (std::vector<uint16_t> {'a'}));
    EXPECT_EQ(utf16_from_utf8(std::string(5000, 'x'), 1023).size(), 1023u);
}

} // namespace
} // namespace vmgen::vm::ic::testing
