#include "vm/hyperv/partition.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace vmgen::vm::hyperv {
namespace {

namespace tlfs = protocols::hyperv;
namespace msr = protocols::hyperv::msr;

constexpr uint64_t ram_bytes = 1ull << 20; // RAM is [0, 1 MiB)
constexpr uint64_t outside_ram = 0x200000;
constexpr uint64_t tsc_hz = 2'500'000'000;
constexpr uint64_t apic_hz = 1'000'000'000;
constexpr uint8_t port = 0xe0;
constexpr uint64_t post_message_control = tlfs::hypercall::post_message;
constexpr uint64_t signal_event_fast = tlfs::hypercall::signal_event | tlfs::hypercall::fast;

class FakeInterrupt final : public SynicInterrupt {
public:
    void inject(uint32_t vp_index, uint8_t vector) override
    {
        std::lock_guard lock(m_lock);
        m_injected.emplace_back(vp_index, vector);
    }
    std::vector<std::pair<uint32_t, uint8_t>> take()
    {
        std::lock_guard lock(m_lock);
        return std::exchange(m_injected, {});
    }

private:
    std::mutex m_lock;
    std::vector<std::pair<uint32_t, uint8_t>> m_injected;
};

// Reference time follows the guest TSC exactly: time = tsc * 10^7 / tsc_hz.
class FakeClock final : public ReferenceClock {
public:
    uint64_t reference_time() override
    {
        return static_cast<uint64_t>((tlfs::uint128{tsc} * 10'000'000) / tsc_hz);
    }
    uint64_t guest_tsc() override { return tsc; }
    uint64_t tsc = 0;
};

class FakeVmbus final : public VmbusHostSide {
public:
    struct Post {
        uint32_t connection_id;
        uint32_t type;
        std::vector<uint8_t> payload;
    };
    uint16_t on_post_message(uint32_t connection_id, uint32_t message_type,
                             std::span<const uint8_t> payload) override
    {
        posts.push_back({connection_id, message_type, {payload.begin(), payload.end()}});
        return connection_id == 4 || connection_id == 1 ? hv_status::success : hv_status::invalid_connection_id;
    }
    uint16_t on_signal_event(uint32_t connection_id, uint16_t flag_number) override
    {
        events.emplace_back(connection_id, flag_number);
        return connection_id == 0x2001 ? hv_status::success : hv_status::invalid_connection_id;
    }
    std::vector<Post> posts;
    std::vector<std::pair<uint32_t, uint16_t>> events;
};

class PartitionTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto created = GuestMemory::create({{0, ram_bytes}});
        ASSERT_TRUE(created);
        memory = std::make_unique<GuestMemory>(std::move(*created));
        PartitionConfig config;
        config.vp_count = 2;
        config.tsc_hz = tsc_hz;
        config.apic_hz = apic_hz;
        config.hypercall_port = port;
        auto p = Partition::create(*memory, config, interrupt, clock, &vmbus);
        ASSERT_TRUE(p) << p.error().message();
        partition = std::move(*p);
    }

    void enable_hypercalls(uint64_t gpa = 0x1000)
    {
        ASSERT_TRUE(partition->write_msr(0, msr::guest_os_id, 0x8100'0000'0006'0100ull));
        ASSERT_TRUE(partition->write_msr(0, msr::hypercall, gpa | 1));
    }

    // Linux's hv_synic_enable_regs on `vp`: SIMP, SIEFP, SINT2 = vector, SCONTROL.
    void enable_synic(uint32_t vp, uint64_t simp, uint64_t siefp, uint8_t vector = 0xf3, bool masked = false)
    {
        ASSERT_TRUE(partition->write_msr(vp, msr::simp, simp | 1));
        ASSERT_TRUE(partition->write_msr(vp, msr::siefp, siefp | 1));
        ASSERT_TRUE(partition->write_msr(vp, msr::sint0 + 2, vector | (masked ? msr::sint_masked : 0)));
        ASSERT_TRUE(partition->write_msr(vp, msr::scontrol, 1));
    }

    uint8_t* host(uint64_t gpa, uint64_t len = 1) { return memory->span(gpa, len)->data(); }

    tlfs::Message slot(uint64_t simp, uint32_t sint)
    {
        tlfs::Message m;
        EXPECT_TRUE(memory->read(simp + sint * 256, std::span(reinterpret_cast<uint8_t*>(&m), sizeof(m))));
        return m;
    }
    // The guest consumes a message: clears the type, EOMs if the host asked for it.
    void guest_consume(uint32_t vp, uint64_t simp, uint32_t sint)
    {
        ASSERT_TRUE(memory->write_obj<uint32_t>(simp + sint * 256, 0));
        if ((slot(simp, sint).header.flags & tlfs::message_flag_pending) != 0) {
            ASSERT_TRUE(partition->write_msr(vp, msr::eom, 0));
        }
    }

    void write_post_input(uint64_t gpa, uint32_t connection_id, uint32_t type, uint32_t size, uint8_t fill,
                          uint32_t reserved = 0)
    {
        tlfs::PostMessageInput input{};
        input.connection_id = connection_id;
        input.reserved = reserved;
        input.message_type = type;
        input.payload_size = size;
        std::memset(input.payload, fill, sizeof(input.payload));
        ASSERT_TRUE(memory->write_obj(gpa, input));
    }

    std::unique_ptr<GuestMemory> memory;
    FakeInterrupt interrupt;
    FakeClock clock;
    FakeVmbus vmbus;
    std::unique_ptr<Partition> partition;
};

uint16_t status_of(uint64_t rax) { return static_cast<uint16_t>(rax & 0xffff); }

// ---- configuration and MSR basics ----

TEST(PartitionCreate, RejectsBadConfigurations)
{
    auto memory = GuestMemory::create({{0, 0x10000}});
    ASSERT_TRUE(memory);
    FakeInterrupt interrupt;
    FakeClock clock;
    PartitionConfig config{.vp_count = 0, .tsc_hz = tsc_hz, .apic_hz = apic_hz, .hypercall_port = port};
    EXPECT_FALSE(Partition::create(*memory, config, interrupt, clock, nullptr));
    config.vp_count = Partition::max_vp_count + 1;
    EXPECT_FALSE(Partition::create(*memory, config, interrupt, clock, nullptr));
    config.vp_count = 1;
    config.tsc_hz = 0;
    EXPECT_FALSE(Partition::create(*memory, config, interrupt, clock, nullptr));
    config.tsc_hz = tsc_hz;
    config.apic_hz = 0;
    EXPECT_FALSE(Partition::create(*memory, config, interrupt, clock, nullptr));
    config.apic_hz = apic_hz;
    EXPECT_TRUE(Partition::create(*memory, config, interrupt, clock, nullptr));
}

TEST_F(PartitionTest, HandlesExactlyTheImplementedMsrs)
{
    for (uint32_t m : {0x40000000u, 0x40000001u, 0x40000002u, 0x40000020u, 0x40000021u, 0x40000022u, 0x40000023u,
                       0x40000073u, 0x40000080u, 0x40000081u, 0x40000082u, 0x40000083u, 0x40000084u, 0x40000090u,
                       0x4000009Fu, 0x40000100u, 0x40000104u, 0x40000105u, 0x40000118u}) {
        EXPECT_TRUE(Partition::handles_msr(m)) << std::hex << m;
    }
    for (uint32_t m : {0x40000003u, 0x40000010u, 0x40000070u, 0x400000A0u, 0x400000B0u, 0x40000106u, 0x10u}) {
        EXPECT_FALSE(Partition::handles_msr(m)) << std::hex << m;
    }
}

TEST_F(PartitionTest, ReadOnlyMsrs)
{
    EXPECT_EQ(*partition->read_msr(0, msr::vp_index), 0u);
    EXPECT_EQ(*partition->read_msr(1, msr::vp_index), 1u);
    EXPECT_EQ(*partition->read_msr(0, msr::tsc_frequency), tsc_hz);
    EXPECT_EQ(*partition->read_msr(1, msr::apic_frequency), apic_hz);
    EXPECT_EQ(*partition->read_msr(0, msr::sversion), 1u);
    EXPECT_EQ(*partition->read_msr(0, msr::eom), 0u);
    clock.tsc = 5 * tsc_hz; // 5 s
    EXPECT_EQ(*partition->read_msr(1, msr::time_ref_count), 50'000'000u);
    for (uint32_t m : {msr::vp_index, msr::time_ref_count, msr::tsc_frequency, msr::apic_frequency, msr::sversion})
        EXPECT_FALSE(partition->write_msr(0, m, 0)) << std::hex << m;
}

TEST_F(PartitionTest, UnknownVpOrMsrIsGp)
{
    EXPECT_FALSE(partition->read_msr(2, msr::vp_index));
    EXPECT_FALSE(partition->write_msr(2, msr::scontrol, 1));
    EXPECT_FALSE(partition->read_msr(0, 0x40000003));
    EXPECT_FALSE(partition->write_msr(0, 0x400000B0, 1));
}

TEST_F(PartitionTest, PlainStoredMsrs)
{
    EXPECT_TRUE(partition->write_msr(1, msr::vp_assist_page, 0x5001));
    EXPECT_EQ(*partition->read_msr(1, msr::vp_assist_page), 0x5001u);
    EXPECT_EQ(*partition->read_msr(0, msr::vp_assist_page), 0u); // per VP
    EXPECT_TRUE(partition->write_msr(0, msr::tsc_invariant_control, 1));
    EXPECT_EQ(*partition->read_msr(1, msr::tsc_invariant_control), 1u); // partition-wide
    EXPECT_TRUE(partition->write_msr(0, msr::guest_os_id, 0x1234));
    EXPECT_EQ(*partition->read_msr(1, msr::guest_os_id), 0x1234u);
}

// ---- hypercall page ----

TEST_F(PartitionTest, HypercallPageCode)
{
    memory->fill(0x3000, 0x90, 4096).value();
    enable_hypercalls(0x3000);
    EXPECT_EQ(*partition->read_msr(0, msr::hypercall), 0x3001u);
    const uint8_t expected[] = {0xf3, 0x0f, 0x1e, 0xfa, 0xe6, port, 0xc3};
    EXPECT_EQ(std::memcmp(host(0x3000, 4096), expected, sizeof(expected)), 0);
    EXPECT_EQ(host(0x3000, 4096)[sizeof(expected)], 0xcc);
    EXPECT_EQ(host(0x3000, 4096)[4095], 0xcc);
}

TEST_F(PartitionTest, HypercallEnableNeedsGuestOsId)
{
    EXPECT_TRUE(partition->write_msr(0, msr::hypercall, 0x3001));
    EXPECT_EQ(*partition->read_msr(0, msr::hypercall), 0x3000u);
    EXPECT_EQ(partition->hypercall(0, false, post_message_control, 0x1000, 0), hypercall_inject_ud);
}

TEST_F(PartitionTest, HypercallPageOutsideRamIsGp)
{
    ASSERT_TRUE(partition->write_msr(0, msr::guest_os_id, 1));
    EXPECT_FALSE(partition->write_msr(0, msr::hypercall, outside_ram | 1));
    EXPECT_EQ(*partition->read_msr(0, msr::hypercall), 0u);
    EXPECT_FALSE(partition->write_msr(0, msr::hypercall, 0xffff'ffff'ffff'f001ull));
}

TEST_F(PartitionTest, ClearingGuestOsIdDisablesHypercalls)
{
    enable_hypercalls();
    EXPECT_NE(partition->hypercall(0, false, 0x99, 0, 0), hypercall_inject_ud);
    ASSERT_TRUE(partition->write_msr(0, msr::guest_os_id, 0));
    EXPECT_EQ(*partition->read_msr(0, msr::hypercall) & 1, 0u);
    EXPECT_EQ(partition->hypercall(0, false, 0x99, 0, 0), hypercall_inject_ud);
}

TEST_F(PartitionTest, LockedHypercallMsrIgnoresWrites)
{
    ASSERT_TRUE(partition->write_msr(0, msr::guest_os_id, 1));
    ASSERT_TRUE(partition->write_msr(0, msr::hypercall, 0x3000 | msr::hypercall_locked | 1));
    EXPECT_TRUE(partition->write_msr(0, msr::hypercall, 0x4000));
    EXPECT_EQ(*partition->read_msr(0, msr::hypercall), 0x3003u);
}

// ---- reference TSC page ----

int64_t page_time(const tlfs::ReferenceTscPage& page, uint64_t tsc)
{
    return static_cast<int64_t>(tlfs::reference_tsc_time(tsc, page.scale, page.offset));
}

TEST_F(PartitionTest, ReferenceTscPageMatchesTheClock)
{
    for (uint64_t start : {0ull, 12'345ull, 1'000'000'007ull, 987'654'321'012ull}) {
        clock.tsc = start;
        ASSERT_TRUE(partition->write_msr(0, msr::reference_tsc, 0x6001));
        EXPECT_EQ(*partition->read_msr(1, msr::reference_tsc), 0x6001u);
        auto page = *memory->read_obj<tlfs::ReferenceTscPage>(0x6000);
        EXPECT_NE(page.sequence, 0u);
        EXPECT_NE(page.sequence, 0xffffffffu);
        const uint64_t expected_scale =
            static_cast<uint64_t>((tlfs::uint128{10'000'000} << 64) / tsc_hz);
        EXPECT_EQ(page.scale, expected_scale);
        for (uint64_t later : {start, start + 1, start + 2'500, start + tsc_hz, start + 3600 * tsc_hz,
                               start + 86'400 * 30 * tsc_hz}) {
            clock.tsc = later;
            const auto want = static_cast<int64_t>(clock.reference_time());
            const int64_t got = page_time(page, later);
            EXPECT_LE(std::abs(got - want), 1) << "start " << start << " tsc " << later;
        }
    }
}

TEST_F(PartitionTest, ReferenceTscPageSequenceChangesOnRewrite)
{
    ASSERT_TRUE(partition->write_msr(0, msr::reference_tsc, 0x6001));
    const uint32_t first = memory->read_obj<uint32_t>(0x6000).value();
    ASSERT_TRUE(partition->write_msr(0, msr::reference_tsc, 0x6001));
    EXPECT_NE(memory->read_obj<uint32_t>(0x6000).value(), first);
    EXPECT_NE(memory->read_obj<uint32_t>(0x6000).value(), 0u);
}

TEST_F(PartitionTest, ReferenceTscPageOutsideRamIsGp)
{
    EXPECT_FALSE(partition->write_msr(0, msr::reference_tsc, outside_ram | 1));
    EXPECT_EQ(*partition->read_msr(0, msr::reference_tsc), 0u);
    EXPECT_TRUE(partition->write_msr(0, msr::reference_tsc, outside_ram)); // disabled: not touched
}

TEST(PartitionSlowTsc, ReferenceTscPageStaysInvalid)
{
    auto memory = GuestMemory::create({{0, 0x10000}});
    ASSERT_TRUE(memory);
    FakeInterrupt interrupt;
    FakeClock clock;
    PartitionConfig config{.vp_count = 1, .tsc_hz = 10'000'000, .apic_hz = apic_hz, .hypercall_port = port};
    auto partition = Partition::create(*memory, config, interrupt, clock, nullptr);
    ASSERT_TRUE(partition);
    ASSERT_TRUE(memory->write_obj<uint32_t>(0x2000, 77));
    ASSERT_TRUE((*partition)->write_msr(0, msr::reference_tsc, 0x2001));
    EXPECT_EQ(memory->read_obj<uint32_t>(0x2000).value(), 0u);
}

// ---- SynIC MSRs ----

TEST_F(PartitionTest, SynicMsrsReadBack)
{
    EXPECT_EQ(*partition->read_msr(0, msr::sint0 + 5), msr::sint_masked); // power-on: masked, vector 0
    EXPECT_TRUE(partition->write_msr(0, msr::simp, 0x8001));
    EXPECT_TRUE(partition->write_msr(0, msr::siefp, 0x9001));
    EXPECT_TRUE(partition->write_msr(0, msr::scontrol, 1));
    const uint64_t sint = 0x30 | msr::sint_auto_eoi | msr::sint_polling;
    EXPECT_TRUE(partition->write_msr(0, msr::sint0 + 15, sint));
    EXPECT_EQ(*partition->read_msr(0, msr::simp), 0x8001u);
    EXPECT_EQ(*partition->read_msr(0, msr::siefp), 0x9001u);
    EXPECT_EQ(*partition->read_msr(0, msr::scontrol), 1u);
    EXPECT_EQ(*partition->read_msr(0, msr::sint0 + 15), sint);
    EXPECT_EQ(*partition->read_msr(1, msr::simp), 0u); // per VP
}

TEST_F(PartitionTest, SynicPagesOutsideRamAreGp)
{
    EXPECT_FALSE(partition->write_msr(0, msr::simp, outside_ram | 1));
    EXPECT_FALSE(partition->write_msr(0, msr::siefp, (ram_bytes - 0x1000) + 0x1000 + 1));
    EXPECT_EQ(*partition->read_msr(0, msr::simp), 0u);
    EXPECT_EQ(*partition->read_msr(0, msr::siefp), 0u);
    EXPECT_TRUE(partition->write_msr(0, msr::simp, outside_ram)); // disabled: only stored
}

TEST_F(PartitionTest, SintVectorBelow16IsGpUnlessMasked)
{
    EXPECT_FALSE(partition->write_msr(0, msr::sint0 + 2, 0x0f));
    EXPECT_FALSE(partition->write_msr(0, msr::sint0 + 2, 0x00));
    EXPECT_EQ(*partition->read_msr(0, msr::sint0 + 2), msr::sint_masked);
    EXPECT_TRUE(partition->write_msr(0, msr::sint0 + 2, 0x10));
    EXPECT_TRUE(partition->write_msr(0, msr::sint0 + 2, msr::sint_masked | 0x05));
    EXPECT_EQ(*partition->read_msr(0, msr::sint0 + 2), msr::sint_masked | 0x05);
}

// ---- crash MSRs ----

TEST_F(PartitionTest, CrashMsrs)
{
    EXPECT_EQ(*partition->read_msr(0, msr::crash_ctl), msr::crash_ctl_notify);
    EXPECT_FALSE(partition->crash());
    for (uint32_t i = 0; i < 5; ++i)
        ASSERT_TRUE(partition->write_msr(1, msr::crash_p0 + i, 0x100 + i));
    EXPECT_EQ(*partition->read_msr(0, msr::crash_p0 + 3), 0x103u);
    ASSERT_TRUE(partition->write_msr(1, msr::crash_ctl, 0)); // no notify bit: nothing recorded
    EXPECT_FALSE(partition->crash());
    ASSERT_TRUE(partition->write_msr(1, msr::crash_ctl, msr::crash_ctl_notify));
    auto crash = partition->crash();
    ASSERT_TRUE(crash);
    EXPECT_EQ(crash->params, (std::array<uint64_t, 5>{0x100, 0x101, 0x102, 0x103, 0x104}));
}

// ---- HvPostMessage ----

TEST_F(PartitionTest, PostMessageHappyPath)
{
    enable_hypercalls();
    write_post_input(0x2000, 4, 1, 40, 0xab);
    EXPECT_EQ(partition->hypercall(0, false, post_message_control, 0x2000, 0), 0u);
    ASSERT_EQ(vmbus.posts.size(), 1u);
    EXPECT_EQ(vmbus.posts[0].connection_id, 4u);
    EXPECT_EQ(vmbus.posts[0].type, 1u);
    EXPECT_EQ(vmbus.posts[0].payload, std::vector<uint8_t>(40, 0xab));
    // A 240-byte payload, the maximum.
    write_post_input(0x2000, 1, 14, 240, 0x5a);
    EXPECT_EQ(partition->hypercall(1, false, post_message_control, 0x2000, 0), 0u);
    ASSERT_EQ(vmbus.posts.size(), 2u);
    EXPECT_EQ(vmbus.posts[1].payload, std::vector<uint8_t>(240, 0x5a));
}

TEST_F(PartitionTest, PostMessageErrors)
{
    enable_hypercalls();
    write_post_input(0x2000, 4, 1, 16, 1);
    auto call = [&](uint64_t control, uint64_t gpa) { return status_of(partition->hypercall(0, false, control, gpa, 0)); };
    EXPECT_EQ(call(post_message_control, 0x2004), tlfs::status::invalid_alignment);
    EXPECT_EQ(call(post_message_control, 0x2f08), tlfs::status::invalid_alignment); // crosses a page
    EXPECT_EQ(call(post_message_control, outside_ram), tlfs::status::invalid_hypercall_input);
    EXPECT_EQ(call(post_message_control, ram_bytes - 0x1000 + 0x1000), tlfs::status::invalid_hypercall_input);
    EXPECT_EQ(call(post_message_control | tlfs::hypercall::fast, 0x2000), tlfs::status::invalid_hypercall_input);
    EXPECT_EQ(call(post_message_control | (1ull << 32), 0x2000), tlfs::status::invalid_hypercall_input); // reps
    EXPECT_EQ(call(post_message_control | (1ull << 48), 0x2000), tlfs::status::invalid_hypercall_input); // start
    EXPECT_EQ(call(post_message_control | (1ull << 17), 0x2000), tlfs::status::invalid_hypercall_input); // varhead
    EXPECT_EQ(call(post_message_control | (1ull << 63), 0x2000), tlfs::status::invalid_hypercall_input); // rsvd
    EXPECT_TRUE(vmbus.posts.empty());

    write_post_input(0x2000, 4, 1, 241, 1);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_parameter);
    write_post_input(0x2000, 4, 0, 16, 1);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_parameter);
    write_post_input(0x2000, 4, 0x80000000, 16, 1);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_parameter);
    write_post_input(0x2000, 4, 1, 16, 1, 7);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_hypercall_input);
    write_post_input(0x2000, 0x01000004, 1, 16, 1);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_connection_id);
    EXPECT_TRUE(vmbus.posts.empty());

    write_post_input(0x2000, 9, 1, 16, 1); // the fake knows only 1 and 4
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_connection_id);
    EXPECT_EQ(vmbus.posts.size(), 1u);

    partition->connect_vmbus(nullptr);
    write_post_input(0x2000, 4, 1, 16, 1);
    EXPECT_EQ(call(post_message_control, 0x2000), tlfs::status::invalid_connection_id);
    EXPECT_EQ(vmbus.posts.size(), 1u);
}

TEST_F(PartitionTest, UserModeAndUnknownCodes)
{
    enable_hypercalls();
    write_post_input(0x2000, 4, 1, 16, 1);
    EXPECT_EQ(partition->hypercall(0, true, post_message_control, 0x2000, 0), hypercall_inject_ud);
    EXPECT_TRUE(vmbus.posts.empty());
    for (uint64_t code : {0x0001ull, 0x0002ull, 0x0008ull, 0x000bull, 0x0046ull, 0x8001ull, 0xffffull})
        EXPECT_EQ(partition->hypercall(0, false, code, 0x2000, 0), tlfs::status::invalid_hypercall_code) << code;
}

// ---- HvSignalEvent ----

TEST_F(PartitionTest, SignalEvent)
{
    enable_hypercalls();
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, 0x2001, 0), 0u);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, (7ull << 32) | 0x2001, 0), 0u);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, 0x33, 0), tlfs::status::invalid_connection_id);
    ASSERT_EQ(vmbus.events.size(), 3u);
    EXPECT_EQ(vmbus.events[0], (std::pair<uint32_t, uint16_t>{0x2001, 0}));
    EXPECT_EQ(vmbus.events[1], (std::pair<uint32_t, uint16_t>{0x2001, 7}));

    // Slow form: the same 8 bytes in memory.
    ASSERT_TRUE(memory->write_obj<uint64_t>(0x2000, (3ull << 32) | 0x2001));
    EXPECT_EQ(partition->hypercall(0, false, tlfs::hypercall::signal_event, 0x2000, 0), 0u);
    EXPECT_EQ(vmbus.events.back(), (std::pair<uint32_t, uint16_t>{0x2001, 3}));
    EXPECT_EQ(status_of(partition->hypercall(0, false, tlfs::hypercall::signal_event, 0x2002, 0)),
              tlfs::status::invalid_alignment);
    EXPECT_EQ(status_of(partition->hypercall(0, false, tlfs::hypercall::signal_event, outside_ram, 0)),
              tlfs::status::invalid_hypercall_input);

    const size_t before = vmbus.events.size();
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, (1ull << 48) | 0x2001, 0),
              tlfs::status::invalid_hypercall_input);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, (2048ull << 32) | 0x2001, 0),
              tlfs::status::invalid_parameter);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, 0xff002001, 0), tlfs::status::invalid_connection_id);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast | (1ull << 32), 0x2001, 0),
              tlfs::status::invalid_hypercall_input);
    EXPECT_EQ(vmbus.events.size(), before);
    partition->connect_vmbus(nullptr);
    EXPECT_EQ(partition->hypercall(0, false, signal_event_fast, 0x2001, 0), tlfs::status::invalid_connection_id);
}

// ---- message delivery ----

TEST_F(PartitionTest, MessagesQueueBehindABusySlotUntilEom)
{
    constexpr uint64_t simp = 0x8000;
    enable_synic(1, simp, 0x9000);
    const std::vector<uint8_t> first(24, 0x11);
    const std::vector<uint8_t> second(240, 0x22);
    ASSERT_TRUE(partition->post_message(1, 2, 15, first));
    ASSERT_TRUE(partition->post_message(1, 2, 16, second));

    auto m = slot(simp, 2);
    EXPECT_EQ(m.header.message_type, 15u);
    EXPECT_EQ(m.header.payload_size, 24u);
    EXPECT_EQ(m.header.flags & tlfs::message_flag_pending, tlfs::message_flag_pending); // one more queued
    EXPECT_EQ(std::memcmp(m.payload, first.data(), first.size()), 0);
    EXPECT_EQ(interrupt.take(), (std::vector<std::pair<uint32_t, uint8_t>>{{1, 0xf3}}));

    // EOM without consuming the slot delivers nothing.
    ASSERT_TRUE(partition->write_msr(1, msr::eom, 0));
    EXPECT_EQ(slot(simp, 2).header.message_type, 15u);
    EXPECT_TRUE(interrupt.take().empty());

    guest_consume(1, simp, 2);
    m = slot(simp, 2);
    EXPECT_EQ(m.header.message_type, 16u);
    EXPECT_EQ(m.header.payload_size, 240u);
    EXPECT_EQ(m.header.flags, 0u);
    EXPECT_EQ(std::memcmp(m.payload, second.data(), second.size()), 0);
    EXPECT_EQ(interrupt.take(), (std::vector<std::pair<uint32_t, uint8_t>>{{1, 0xf3}}));

    // Nothing else on VP 0 or other slots.
    EXPECT_EQ(slot(simp, 1).header.message_type, 0u);
    EXPECT_EQ(*partition->read_msr(0, msr::simp), 0u);
}

TEST_F(PartitionTest, LaterMessageToABusySlotSetsPending)
{
    constexpr uint64_t simp = 0x8000;
    enable_synic(0, simp, 0x9000);
    ASSERT_TRUE(partition->post_message(0, 2, 1, std::vector<uint8_t>(8, 1)));
    EXPECT_EQ(slot(simp, 2).header.flags, 0u); // nothing queued behind it
    ASSERT_TRUE(partition->post_message(0, 2, 2, std::vector<uint8_t>(8, 2)));
    EXPECT_EQ(slot(simp, 2).header.message_type, 1u);
    EXPECT_EQ(slot(simp, 2).header.flags, tlfs::message_flag_pending);
    interrupt.take();
    guest_consume(0, simp, 2);
    EXPECT_EQ(slot(simp, 2).header.message_type, 2u);
    EXPECT_EQ(interrupt.take().size(), 1u);
}

TEST_F(PartitionTest, MaskedSintHoldsTheInterruptUntilUnmasked)
{
    constexpr uint64_t simp = 0x8000;
    enable_synic(0, simp, 0x9000, 0xf3, /*masked=*/true);
    ASSERT_TRUE(partition->post_message(0, 2, 5, std::vector<uint8_t>(4, 9)));
    EXPECT_EQ(slot(simp, 2).header.message_type, 5u);
    EXPECT_TRUE(interrupt.take().empty());
    ASSERT_TRUE(partition->write_msr(0, msr::sint0 + 2, 0xf3));
    EXPECT_EQ(interrupt.take(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));
    ASSERT_TRUE(partition->write_msr(0, msr::sint0 + 2, 0xf3)); // nothing owed any more
    EXPECT_TRUE(interrupt.take().empty());
}

TEST_F(PartitionTest, NothingDeliveredWhileSynicDisabled)
{
    constexpr uint64_t simp = 0x8000;
    ASSERT_TRUE(partition->write_msr(0, msr::sint0 + 2, 0xf3));
    ASSERT_TRUE(partition->post_message(0, 2, 5, std::vector<uint8_t>(4, 9)));
    ASSERT_TRUE(partition->write_msr(0, msr::simp, simp | 1));
    EXPECT_EQ(slot(simp, 2).header.message_type, 0u); // SCONTROL still off
    EXPECT_TRUE(interrupt.take().empty());
    ASSERT_TRUE(partition->write_msr(0, msr::scontrol, 1));
    EXPECT_EQ(slot(simp, 2).header.message_type, 5u);
    EXPECT_EQ(interrupt.take().size(), 1u);

    // SIMP disabled: queued until it is enabled again.
    guest_consume(0, simp, 2);
    ASSERT_TRUE(partition->write_msr(0, msr::simp, simp));
    ASSERT_TRUE(partition->post_message(0, 2, 6, {}));
    EXPECT_EQ(slot(simp, 2).header.message_type, 0u);
    ASSERT_TRUE(partition->write_msr(0, msr::simp, simp | 1));
    EXPECT_EQ(slot(simp, 2).header.message_type, 6u);
    EXPECT_EQ(slot(simp, 2).header.payload_size, 0u);
}

TEST_F(PartitionTest, PostMessageRejectsBadArgumentsAndAFullQueue)
{
    EXPECT_FALSE(partition->post_message(2, 2, 1, {}));
    EXPECT_FALSE(partition->post_message(0, 16, 1, {}));
    EXPECT_FALSE(partition->post_message(0, 2, 0, {}));
    EXPECT_FALSE(partition->post_message(0, 2, 1, std::vector<uint8_t>(241)));
    for (size_t i = 0; i < Partition::message_queue_depth; ++i)
        EXPECT_TRUE(partition->post_message(0, 2, 1, {}));
    EXPECT_FALSE(partition->post_message(0, 2, 1, {}));
    EXPECT_TRUE(partition->post_message(0, 3, 1, {})); // other SINTs have their own queue
}

TEST_F(PartitionTest, ConcurrentProducerAndGuestKeepOrder)
{
    constexpr uint64_t simp = 0x8000;
    constexpr uint32_t count = 20000;
    enable_synic(1, simp, 0x9000);
    std::thread producer([&] {
        for (uint32_t i = 1; i <= count;) {
            uint8_t payload[4];
            std::memcpy(payload, &i, 4);
            if (partition->post_message(1, 2, i, payload))
                ++i;
            else
                std::this_thread::yield();
        }
    });
    // The guest: poll the slot, check order, clear the type with a compare-exchange, EOM if pending.
    uint8_t* base = host(simp + 2 * 256, 256);
    auto* type = reinterpret_cast<uint32_t*>(base);
    uint32_t expected = 1;
    while (expected <= count) {
        uint32_t seen = __atomic_load_n(type, __ATOMIC_ACQUIRE);
        if (seen == 0) {
            std::this_thread::yield(); // a lost wake-up would hang here (the test's timeout catches it)
            continue;
        }
        uint32_t value;
        std::memcpy(&value, base + 16, 4);
        ASSERT_EQ(seen, expected);
        ASSERT_EQ(value, expected);
        ++expected;
        ASSERT_TRUE(__atomic_compare_exchange_n(type, &seen, 0u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
        if ((__atomic_load_n(base + 5, __ATOMIC_SEQ_CST) & 1) != 0) {
            ASSERT_TRUE(partition->write_msr(1, msr::eom, 0));
        }
    }
    producer.join();
    EXPECT_EQ(expected, count + 1);
}

// ---- event flags ----

TEST_F(PartitionTest, EventFlags)
{
    constexpr uint64_t siefp = 0x9000;
    enable_synic(1, 0x8000, siefp);
    EXPECT_TRUE(partition->signal_event(1, 2, 5));
    EXPECT_EQ(interrupt.take(), (std::vector<std::pair<uint32_t, uint8_t>>{{1, 0xf3}}));
    EXPECT_EQ(memory->read_obj<uint64_t>(siefp + 2 * 256).value(), 1ull << 5);
    EXPECT_TRUE(partition->signal_event(1, 2, 5)); // already set: no new interrupt
    EXPECT_TRUE(interrupt.take().empty());
    EXPECT_TRUE(partition->signal_event(1, 2, 2047));
    EXPECT_EQ(memory->read_obj<uint64_t>(siefp + 2 * 256 + 248).value(), 1ull << 63);
    EXPECT_EQ(interrupt.take().size(), 1u);
    ASSERT_TRUE(memory->write_obj<uint64_t>(siefp + 2 * 256, 0)); // the guest consumes the flag
    EXPECT_TRUE(partition->signal_event(1, 2, 5));
    EXPECT_EQ(interrupt.take().size(), 1u);

    EXPECT_FALSE(partition->signal_event(2, 2, 5));
    EXPECT_FALSE(partition->signal_event(1, 16, 5));
    EXPECT_FALSE(partition->signal_event(1, 2, 2048));
    // SIEFP disabled on VP 0: dropped, nothing written.
    EXPECT_TRUE(partition->signal_event(0, 2, 5));
    EXPECT_TRUE(interrupt.take().empty());
}

TEST_F(PartitionTest, EventFlagOnMaskedSintInterruptsOnUnmask)
{
    constexpr uint64_t siefp = 0x9000;
    enable_synic(0, 0x8000, siefp, 0xf3, /*masked=*/true);
    EXPECT_TRUE(partition->signal_event(0, 2, 1));
    EXPECT_EQ(memory->read_obj<uint64_t>(siefp + 2 * 256).value(), 2u);
    EXPECT_TRUE(interrupt.take().empty());
    ASSERT_TRUE(partition->write_msr(0, msr::sint0 + 2, 0xf3));
    EXPECT_EQ(interrupt.take(), (std::vector<std::pair<uint32_t, uint8_t>>{{0, 0xf3}}));
}

TEST_F(PartitionTest, EventFlagsAreSetAtomically)
{
    constexpr uint64_t siefp = 0x9000;
    enable_synic(0, 0x8000, siefp);
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (uint32_t flag = t; flag < 2048; flag += 8)
                partition->signal_event(0, 2, flag);
        });
    }
    for (auto& thread : threads)
        thread.join();
    for (uint64_t word = 0; word < 32; ++word)
        EXPECT_EQ(memory->read_obj<uint64_t>(siefp + 2 * 256 + word * 8).value(), ~0ull) << word;
    EXPECT_EQ(interrupt.take().size(), 2048u); // one per newly set flag
}

// ---- reset ----

TEST_F(PartitionTest, ResetReturnsToPowerOn)
{
    enable_hypercalls();
    enable_synic(0, 0x8000, 0x9000);
    ASSERT_TRUE(partition->write_msr(0, msr::reference_tsc, 0x6001));
    ASSERT_TRUE(partition->write_msr(0, msr::vp_assist_page, 0x7001));
    ASSERT_TRUE(partition->write_msr(0, msr::crash_p0, 9));
    ASSERT_TRUE(partition->write_msr(0, msr::crash_ctl, msr::crash_ctl_notify));
    ASSERT_TRUE(partition->post_message(0, 2, 1, {}));
    ASSERT_TRUE(partition->post_message(0, 2, 2, {})); // queued behind the first
    interrupt.take();

    partition->reset();
    for (uint32_t m : {msr::guest_os_id, msr::hypercall, msr::reference_tsc, msr::vp_assist_page, msr::scontrol,
                       msr::simp, msr::siefp, msr::crash_p0, msr::tsc_invariant_control}) {
        EXPECT_EQ(*partition->read_msr(0, m), 0u) << std::hex << m;
    }
    for (uint32_t i = 0; i < 16; ++i)
        EXPECT_EQ(*partition->read_msr(0, msr::sint0 + i), msr::sint_masked);
    EXPECT_EQ(partition->hypercall(0, false, post_message_control, 0x2000, 0), hypercall_inject_ud);
    EXPECT_TRUE(partition->crash()); // host-side diagnostics survive

    // The queued message is gone: a fresh SynIC sees only new messages.
    ASSERT_TRUE(memory->fill(0x8000, 0, 4096));
    enable_synic(0, 0x8000, 0x9000);
    EXPECT_EQ(slot(0x8000, 2).header.message_type, 0u);
    EXPECT_TRUE(interrupt.take().empty());
}

} // namespace
} // namespace vmgen::vm::hyperv
