#include "vm/ic/shutdown_device.h"

#include "support/log.h"

#include <cstring>

namespace vmgen::vm::ic {

namespace wire = protocols::vmbus;

std::vector<uint16_t> utf16_from_utf8(std::string_view text, size_t max_units)
{
    constexpr char32_t replacement = 0xfffd;
    std::vector<uint16_t> out;
    size_t i = 0;
    while (i < text.size()) {
        auto byte = static_cast<uint8_t>(text[i]);
        char32_t cp = replacement;
        size_t length = 1;
        size_t extra = 0;
        char32_t min = 0;
        if (byte < 0x80) {
            cp = byte;
        } else if ((byte & 0xe0) == 0xc0) {
            extra = 1;
            cp = byte & 0x1fu;
            min = 0x80;
        } else if ((byte & 0xf0) == 0xe0) {
            extra = 2;
            cp = byte & 0x0fu;
            min = 0x800;
        } else if ((byte & 0xf8) == 0xf0) {
            extra = 3;
            cp = byte & 0x07u;
            min = 0x10000;
        }
        if (extra > 0) {
            bool ok = i + extra < text.size();
            for (size_t k = 1; ok && k <= extra; ++k) {
                auto next = static_cast<uint8_t>(text[i + k]);
                if ((next & 0xc0) != 0x80)
                    ok = false;
                else
                    cp = (cp << 6) | (next & 0x3fu);
            }
            if (ok && cp >= min && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff))
                length = extra + 1;
            else
                cp = replacement;
        } else if (byte >= 0x80) {
            cp = replacement;
        }
        i += length;
        if (cp >= 0x10000) {
            if (out.size() + 2 > max_units)
                break;
            char32_t v = cp - 0x10000;
            out.push_back(static_cast<uint16_t>(0xd800 + (v >> 10)));
            out.push_back(static_cast<uint16_t>(0xdc00 + (v & 0x3ff)));
        } else {
            if (out.size() + 1 > max_units)
                break;
            out.push_back(static_cast<uint16_t>(cp));
        }
    }
    return out;
}

ShutdownDevice::ShutdownDevice(Guid instance_id)
    : IcDevice("shutdown", class_guid, instance_id,
               {wire::shutdown_version_3_2, wire::shutdown_version_3_1, wire::shutdown_version_3_0,
                wire::shutdown_version_1_0})
{
}

Result<void> ShutdownDevice::request_shutdown(bool force, std::string_view reason)
{
    return send_shutdown(force ? wire::shutdown_flag_force : 0, reason);
}

Result<void> ShutdownDevice::request_restart(bool force, std::string_view reason)
{
    return send_shutdown(wire::shutdown_flag_restart | (force ? wire::shutdown_flag_force : 0), reason);
}

Result<void> ShutdownDevice::send_shutdown(uint32_t flags, std::string_view reason)
{
    wire::ShutdownMessage message {};
    message.reason_code = 0;
    message.timeout_seconds = 0;
    message.flags = flags;
    auto text = utf16_from_utf8(reason, sizeof(message.display_message) / 2 - 1);
    std::memcpy(message.display_message, text.data(), text.size() * sizeof(uint16_t));
    std::vector<uint8_t> body(sizeof(message));
    std::memcpy(body.data(), &message, sizeof(message));

    auto held = lock();
    auto id = send_request(held, wire::ic_message_type_shutdown, body);
    if (!id)
        return fail("shutdown request: {}", id.error().message());
    m_outstanding = *id;
    m_last_status.reset();
    log_info("ic", "shutdown: request sent (flags {}, reason \"{}\")", flags, reason);
    return {};
}

bool ShutdownDevice::request_pending() const
{
    auto held = lock();
    return m_outstanding.has_value();
}

std::optional<uint32_t> ShutdownDevice::last_status() const
{
    auto held = lock();
    return m_last_status;
}

void ShutdownDevice::set_answer_callback(AnswerCallback callback)
{
    auto held = lock();
    m_callback = std::move(callback);
}

void ShutdownDevice::on_response(Lock& lock, const IcResponse& response)
{
    if (!m_outstanding || *m_outstanding != response.request_id) {
        // An answer to a request superseded by a newer one.
        log_debug("ic", "shutdown: answer {:#x} to superseded request {} ignored", response.status,
                  response.request_id);
        return;
    }
    m_outstanding.reset();
    m_last_status = response.status;
    if (response.status == wire::hv_s_ok)
        log_info("ic", "shutdown: the guest accepted the request");
    else
        log_info("ic", "shutdown: the guest refused the request (status {:#x})", response.status);
    AnswerCallback callback = m_callback;
    uint32_t status = response.status;
    lock.unlock();
    if (callback)
        callback(status);
}

void ShutdownDevice::on_closed(Lock& /*lock*/) { m_outstanding.reset(); }

void ShutdownDevice::reset()
{
    IcDevice::reset();
    auto held = lock();
    m_outstanding.reset();
    m_last_status.reset();
}

} // namespace vmgen::vm::ic
