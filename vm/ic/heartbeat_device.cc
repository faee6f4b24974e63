#include "vm/ic/heartbeat_device.h"

#include "support/log.h"
#include "support/thread_name.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::ic {

namespace wire = protocols::vmbus;

namespace {

HeartbeatConfig sanitized(HeartbeatConfig config)
{
    config.period = std::max(config.period, std::chrono::milliseconds(1));
    config.lost_after_periods = std::max(config.lost_after_periods, uint32_t {1});
    return config;
}

} // namespace

std::string_view to_string(HeartbeatStatus status)
{
    switch (status) {
    case HeartbeatStatus::NoContact:
        return "No Contact";
    case HeartbeatStatus::Ok:
        return "OK";
    case HeartbeatStatus::LostCommunication:
        return "Lost Communication";
    }
    return "unknown";
}

HeartbeatDevice::HeartbeatDevice(Guid instance_id, HeartbeatConfig config)
    : IcDevice("heartbeat", class_guid, instance_id, {wire::heartbeat_version_3_0, wire::heartbeat_version_1_0}),
      m_config(sanitized(config))
{
}

HeartbeatDevice::~HeartbeatDevice() { stop_timer(); }

void HeartbeatDevice::start_timer()
{
    if (m_timer.joinable())
        return;
    {
        std::lock_guard timer_lock(m_timer_mutex);
        m_timer_stop = false;
    }
    m_timer = std::thread([this] {
        set_thread_name("heartbeat");
        timer_main();
    });
}

void HeartbeatDevice::stop_timer()
{
    if (!m_timer.joinable())
        return;
    {
        std::lock_guard timer_lock(m_timer_mutex);
        m_timer_stop = true;
    }
    m_timer_wake.notify_all();
    m_timer.join();
}

void HeartbeatDevice::timer_main()
{
    std::unique_lock timer_lock(m_timer_mutex);
    while (!m_timer_stop) {
        timer_lock.unlock();
        tick(Clock::now());
        timer_lock.lock();
        m_timer_wake.wait_for(timer_lock, m_config.period, [this] { return m_timer_stop; });
    }
}

void HeartbeatDevice::tick(Clock::time_point now)
{
    auto held = lock();
    m_now = now;
    if (current_state(held) == IcState::Ready && (!m_next_send || now >= *m_next_send)) {
        m_next_send = now + m_config.period;
        wire::HeartbeatMessage message {};
        message.seq_num = m_next_seq;
        std::vector<uint8_t> body(sizeof(message));
        std::memcpy(body.data(), &message, sizeof(message));
        auto id = send_request(held, wire::ic_message_type_heartbeat, body);
        if (id) {
            ++m_sent_count;
            if (m_sent.size() >= max_pending_requests)
                m_sent.erase(m_sent.begin());
            m_sent[*id] = Sent {m_next_seq, now};
            ++m_next_seq;
        } else {
            log_debug("ic", "heartbeat: not sent: {}", id.error().message());
        }
    }
    update_status();
}

void HeartbeatDevice::update_status()
{
    if (!m_last_answered) {
        m_status = HeartbeatStatus::NoContact;
        return;
    }
    auto window = m_config.period * m_config.lost_after_periods;
    bool lost = m_now && *m_now > *m_last_answered + window;
    HeartbeatStatus status = lost ? HeartbeatStatus::LostCommunication : HeartbeatStatus::Ok;
    if (status != m_status)
        log_info("ic", "heartbeat: {} -> {}", to_string(m_status), to_string(status));
    m_status = status;
}

void HeartbeatDevice::on_response(Lock& lock, const IcResponse& response)
{
    auto it = m_sent.find(response.request_id);
    if (it == m_sent.end() || response.message_type != wire::ic_message_type_heartbeat) {
        guest_error(lock, fmt::format("response type {} to request {} is no heartbeat answer: ignored",
                                      response.message_type, response.request_id));
        return;
    }
    Sent sent = it->second;
    m_sent.erase(it);
    if (response.body.size() < sizeof(uint64_t)) {
        guest_error(lock, fmt::format("heartbeat answer of {} body bytes: ignored", response.body.size()));
        return;
    }
    uint64_t seq = 0;
    std::memcpy(&seq, response.body.data(), sizeof(seq));
    if (response.status != wire::hv_s_ok || seq != sent.seq + 1) {
        guest_error(lock, fmt::format("heartbeat answer seq {} status {:#x} to seq {} (expected seq {}, status 0): "
                                      "ignored",
                                      seq, response.status, sent.seq, sent.seq + 1));
        return;
    }
    ++m_answers;
    if (!m_last_answered || sent.at > *m_last_answered)
        m_last_answered = sent.at;
    update_status();
}

void HeartbeatDevice::on_closed(Lock& /*lock*/)
{
    m_next_send.reset();
    m_last_answered.reset();
    m_sent.clear();
    m_answers = 0;
    m_sent_count = 0;
    if (m_status != HeartbeatStatus::NoContact)
        log_info("ic", "heartbeat: {} -> {} (channel closed)", to_string(m_status),
                 to_string(HeartbeatStatus::NoContact));
    m_status = HeartbeatStatus::NoContact;
}

HeartbeatStatus HeartbeatDevice::status() const
{
    auto held = lock();
    return m_status;
}

uint64_t HeartbeatDevice::answers() const
{
    auto held = lock();
    return m_answers;
}

uint64_t HeartbeatDevice::sent() const
{
    auto held = lock();
    return m_sent_count;
}

} // namespace vmgen::vm::ic
