#include "vm/vmbus/channel.h"

#include "support/errno_error.h"
#include "support/log.h"
#include "support/thread_name.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <immintrin.h>

namespace vmgen::vm::vmbus {

namespace wire = protocols::vmbus;

ServerChannel::ServerChannel(const GuestMemory& memory, SynicGuestSide& synic, Device& device, uint32_t relid)
    : m_memory(memory), m_synic(synic), m_device(device), m_relid(relid)
{
}

Result<std::unique_ptr<ServerChannel>> ServerChannel::create(const GuestMemory& memory, SynicGuestSide& synic,
                                                             Device& device, const ChannelParams& params)
{
    size_t pages = params.ring_pfns.size();
    if (params.downstream_page_offset < 2 || params.downstream_page_offset > pages ||
        pages - params.downstream_page_offset < 2)
        return fail("ring split at page {} of {} leaves a ring without data pages", params.downstream_page_offset,
                    pages);
    std::unique_ptr<ServerChannel> channel(new ServerChannel(memory, synic, device, params.relid));
    channel->m_wake_fd.reset(::eventfd(0, EFD_CLOEXEC));
    if (!channel->m_wake_fd.valid())
        return errno_failure("creating the channel's wake-up eventfd");
    channel->m_sint = params.sint;
    channel->m_target_vp.store(params.target_vp);
    std::copy_n(params.user_data.begin(), std::min(params.user_data.size(), channel->m_user_data.size()),
                channel->m_user_data.begin());
    channel->m_reader =
        TRY_CTX(RingReader::create(memory, params.ring_pfns.first(params.downstream_page_offset)), "inbound ring");
    channel->m_inbound_control = channel->m_reader.control_page();
    channel->m_writer =
        TRY_CTX(RingWriter::create(memory, params.ring_pfns.subspan(params.downstream_page_offset)), "outbound ring");
    return channel;
}

ServerChannel::~ServerChannel() { stop(); }

void ServerChannel::start()
{
    if (!m_worker.joinable())
        m_worker = std::thread([this] {
            set_thread_name("vmbus-ch{}", m_relid);
            run();
        });
}

void ServerChannel::wake()
{
    uint64_t one = 1;
    // An eventfd write fails only if the counter would overflow: the worker is already due to wake.
    auto written = ::write(m_wake_fd.get(), &one, sizeof(one));
    (void)written;
}

void ServerChannel::stop()
{
    m_stopping.store(true);
    wake();
    if (m_worker.joinable())
        m_worker.join();
    std::lock_guard lock(m_send_mutex);
    m_sending = false;
}

void ServerChannel::notify() { wake(); }

namespace {
int64_t steady_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
} // namespace

void ServerChannel::poll_for_packets(std::chrono::microseconds window)
{
    if (window.count() <= 0)
        return;
    int64_t until = steady_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(window).count();
    int64_t previous = m_poll_until.load(std::memory_order_relaxed);
    while (previous < until && !m_poll_until.compare_exchange_weak(previous, until, std::memory_order_relaxed)) {
    }
    // Masked now, before the guest sees the reply: its next packet then comes without a signal. The worker is
    // woken below and always ends its drain by unmasking and re-checking, so nothing can be missed.
    m_inbound_control.store(protocols::vmbus::ring_offset_interrupt_mask, 1);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (std::this_thread::get_id() != m_worker.get_id())
        wake(); // the worker itself reads the ring again when the device returns
}

void ServerChannel::run()
{
    for (;;) {
        uint64_t count = 0;
        auto got = ::read(m_wake_fd.get(), &count, sizeof(count)); // blocks until signalled or stopped
        if (got < 0 && errno == EINTR)
            continue;
        if (m_stopping.load())
            return;
        if (got != static_cast<ssize_t>(sizeof(count))) {
            log_error("vmbus", "channel {}: wake-up eventfd: {}", m_relid, errno_text(errno));
            return;
        }
        if (!failed()) {
            m_device.on_wake(*this);
            drain();
        }
    }
}

void ServerChannel::drain()
{
    m_reader.begin_read();
    bool told_drained = false; // on_drained() since the last packet
    // Every way out tells the device it stopped taking packets (it may hold requests of this burst).
    auto leave = [&] {
        m_device.on_drained(*this);
    };
    for (;;) {
        auto next = m_reader.peek();
        if (!next) {
            fail_channel(next.error());
            leave();
            return;
        }
        if (!next->has_value()) {
            if (!told_drained) {
                told_drained = true;
                m_device.on_drained(*this);
                continue; // that may have taken a while: look again
            }
            // A device expects the guest to answer soon: poll the masked ring a little longer.
            if (steady_ns() < m_poll_until.load(std::memory_order_relaxed) && !m_stopping.load()) {
                _mm_pause();
                continue;
            }
            auto more = m_reader.end_read();
            if (!more) {
                fail_channel(more.error());
                return;
            }
            if (!*more)
                return;
            m_reader.begin_read();
            continue;
        }
        told_drained = false;
        if (m_device.on_packet(*this, **next) == PacketAction::retry) {
            leave();
            // Wait for the guest's next signal (it frees space in the host -> guest ring, or sends more).
            auto more = m_reader.end_read();
            if (!more)
                fail_channel(more.error());
            return;
        }
        m_reader.consume();
        auto signal = m_reader.commit();
        if (!signal) {
            fail_channel(signal.error());
            leave();
            return;
        }
        if (*signal)
            signal_guest();
        if (m_stopping.load()) {
            leave();
            return;
        }
    }
}

void ServerChannel::fail_channel(const Error& error)
{
    if (m_failed.exchange(true))
        return;
    log_warn("vmbus", "channel {}: {}; channel stopped until the guest closes it", m_relid, error.message());
}

void ServerChannel::signal_guest()
{
    uint32_t vp = m_target_vp.load(std::memory_order_relaxed);
    if (!m_synic.signal_event(vp, m_sint, m_relid)) {
        if (m_signal_failures.fetch_add(1) < 8)
            log_warn("vmbus", "channel {}: cannot signal VP {} SINT {}", m_relid, vp, m_sint);
    }
}

Result<void> ServerChannel::send_packet(uint16_t type, uint16_t flags, uint64_t trans_id,
                                        std::span<const uint8_t> header, std::span<const uint8_t> payload)
{
    RingWriter::WriteStatus status;
    {
        std::lock_guard lock(m_send_mutex);
        if (!m_sending)
            return fail("channel {} closed", m_relid);
        if (failed())
            return fail("channel {} failed", m_relid);
        auto written = m_writer.write(type, flags, trans_id, header, payload);
        if (!written) {
            // A packet that can never fit is the device's mistake; anything else is the guest corrupting the ring.
            if (written.error().message().starts_with("ring corrupt"))
                fail_channel(written.error());
            return fail(written.error());
        }
        status = *written;
    }
    if (status == RingWriter::WriteStatus::full)
        return fail("ring full");
    if (status == RingWriter::WriteStatus::written_signal)
        signal_guest();
    return {};
}

} // namespace vmgen::vm::vmbus
