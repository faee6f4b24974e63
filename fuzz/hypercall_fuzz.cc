// libFuzzer target: the Hyper-V enlightenments (vm/hyperv/partition) driven by a hostile guest and host.
//
// The input is a program of operations, each [op byte][operands...]: guest memory writes (to forge hypercall
// inputs and SynIC pages), WRMSR/RDMSR on synthetic MSRs (values raw or folded into RAM), hypercalls (any control
// word, user or kernel mode), host-side post_message / signal_event and reset(). Guest RAM is [0, 1 MiB) plus a
// 64 KiB region at 4 GiB. A crash, hang, sanitizer report or access outside guest RAM is a bug; error results
// and HV_STATUS codes are the expected answers to junk.
//
// Sources it needs besides this file: support/log.cc, vm/memory/guest_memory.cc, vm/hyperv/partition.cc.
#include "vm/hyperv/partition.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>

namespace {

using vmgen::vm::GuestMemory;
using vmgen::vm::hyperv::Partition;

class Reader {
public:
    explicit Reader(std::span<const uint8_t> data) : m_data(data) {}
    [[nodiscard]] bool empty() const { return m_at >= m_data.size(); }
    template <typename T>
    T take()
    {
        T value{};
        size_t n = std::min(sizeof(T), m_data.size() - m_at);
        std::memcpy(&value, m_data.data() + m_at, n);
        m_at += n;
        return value;
    }
    std::span<const uint8_t> take_bytes(size_t n)
    {
        n = std::min(n, m_data.size() - m_at);
        auto bytes = m_data.subspan(m_at, n);
        m_at += n;
        return bytes;
    }

private:
    std::span<const uint8_t> m_data;
    size_t m_at = 0;
};

class NullInterrupt final : public vmgen::vm::hyperv::SynicInterrupt {
public:
    void inject(uint32_t vp_index, uint8_t vector) override
    {
        if (vp_index >= 2 || vector < 16)
            std::abort(); // only unmasked SINTs with valid vectors on existing VPs may interrupt
    }
};

class StepClock final : public vmgen::vm::hyperv::ReferenceClock {
public:
    uint64_t reference_time() override { return m_tsc / 250; }
    uint64_t guest_tsc() override { return m_tsc += 977; }

private:
    uint64_t m_tsc = 0;
};

// Answers connection 4 and re-enters the partition (as a synchronous VMBus server would).
class EchoVmbus final : public vmgen::vm::VmbusHostSide {
public:
    uint16_t on_post_message(uint32_t connection_id, uint32_t message_type,
                             std::span<const uint8_t> payload) override
    {
        if (payload.size() > 240)
            std::abort();
        if (connection_id != 4)
            return vmgen::vm::hv_status::invalid_connection_id;
        if (partition != nullptr)
            partition->post_message(0, 2, message_type, payload);
        return vmgen::vm::hv_status::success;
    }
    uint16_t on_signal_event(uint32_t connection_id, uint16_t flag_number) override
    {
        if (partition != nullptr)
            partition->signal_event(1, static_cast<uint8_t>(connection_id & 15), flag_number);
        return vmgen::vm::hv_status::success;
    }
    Partition* partition = nullptr;
};

const GuestMemory& guest_memory()
{
    static GuestMemory* memory = [] {
        auto created = GuestMemory::create({{0, 1ull << 20}, {4ull << 30, 64ull << 10}});
        if (!created)
            std::abort();
        return new GuestMemory(std::move(*created));
    }();
    return *memory;
}

// Guest-physical addresses: mostly in RAM (low 1 MiB or the high region), sometimes raw.
uint64_t fold_gpa(uint64_t raw)
{
    switch (raw >> 62) {
    case 0:
        return raw & 0xfffffull;
    case 1:
        return (4ull << 30) + (raw & 0xffffull);
    case 2:
        return (4ull << 30) + 0x10000 - (raw & 0xfff); // around the end of the high region
    default:
        return raw;
    }
}

constexpr std::array<uint32_t, 24> msrs = {
    0x40000000, 0x40000001, 0x40000002, 0x40000020, 0x40000021, 0x40000022, 0x40000023, 0x40000073,
    0x40000080, 0x40000081, 0x40000082, 0x40000083, 0x40000084, 0x40000090, 0x40000092, 0x4000009f,
    0x40000100, 0x40000104, 0x40000105, 0x40000118, 0x40000003, 0x400000b0, 0x40000070, 0x40000200};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const GuestMemory& memory = guest_memory();
    if (!memory.fill(0, 0, 1ull << 20) || !memory.fill(4ull << 30, 0, 64ull << 10))
        std::abort();
    NullInterrupt interrupt;
    StepClock clock;
    EchoVmbus vmbus;
    vmgen::vm::hyperv::PartitionConfig config;
    config.vp_count = 2;
    config.tsc_hz = 2'500'000'000;
    config.apic_hz = 1'000'000'000;
    auto created = Partition::create(memory, config, interrupt, clock, &vmbus);
    if (!created)
        std::abort();
    Partition& partition = **created;
    vmbus.partition = &partition;

    Reader in(std::span(data, size));
    for (int steps = 0; steps < 256 && !in.empty(); ++steps) {
        const auto op = in.take<uint8_t>();
        const auto vp = static_cast<uint32_t>(op >> 7); // 0 or 1; 2 is tried by op 7
        switch (op & 7) {
        case 0: { // guest writes memory
            const uint64_t gpa = fold_gpa(in.take<uint64_t>());
            auto bytes = in.take_bytes(in.take<uint8_t>());
            (void)memory.write(gpa, bytes);
            break;
        }
        case 1: { // WRMSR, value folded into RAM with the low bits kept
            const uint32_t msr = msrs[in.take<uint8_t>() % msrs.size()];
            const uint64_t raw = in.take<uint64_t>();
            const uint64_t value = (op & 0x40) != 0 ? raw : (fold_gpa(raw) & ~0xfffull) | (raw & 0xfff);
            (void)partition.write_msr(vp, msr, value);
            break;
        }
        case 2: { // RDMSR
            const uint32_t msr = (op & 0x40) != 0 ? in.take<uint32_t>() : msrs[in.take<uint8_t>() % msrs.size()];
            (void)partition.read_msr(vp, msr);
            break;
        }
        case 3: { // hypercall
            const uint64_t control = in.take<uint64_t>();
            const uint64_t rdx = (op & 0x40) != 0 ? in.take<uint64_t>() : fold_gpa(in.take<uint64_t>());
            const uint64_t rax = partition.hypercall(vp, (op & 0x20) != 0, control, rdx, in.take<uint64_t>());
            if (rax != vmgen::vm::hyperv::hypercall_inject_ud && (rax >> 16) != 0)
                std::abort(); // simple calls complete no reps
            break;
        }
        case 4: { // host posts a message
            const auto sint = in.take<uint8_t>();
            const auto type = in.take<uint32_t>();
            auto payload = in.take_bytes(in.take<uint8_t>());
            partition.post_message(vp, sint, type, payload);
            break;
        }
        case 5: { // host signals an event
            const auto sint = in.take<uint8_t>();
            partition.signal_event(vp, sint, in.take<uint16_t>());
            break;
        }
        case 6:
            partition.reset();
            break;
        default: // out-of-range VP
            (void)partition.write_msr(2, msrs[in.take<uint8_t>() % msrs.size()], in.take<uint64_t>());
            partition.post_message(2, 2, 1, {});
            break;
        }
    }
    return 0;
}
