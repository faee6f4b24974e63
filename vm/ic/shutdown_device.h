// ShutdownDevice: the Hyper-V shutdown integration component (Stop-VM's guest shutdown). Offers service
// versions 3.2, 3.1, 3.0, 1.0 (Linux 6.1 hv_util.c sd_versions) and, once negotiated, sends
// ICMSGTYPE_SHUTDOWN requests (struct shutdown_msg_data) that the guest answers with HV_S_OK (it starts the
// shutdown or restart) or a failure HRESULT (e.g. HV_E_FAIL for hibernation Linux is not configured for).
//
// The answer to the most recent request is kept (last_status) and reported to an optional callback; it stays
// readable after the guest closes the channel (a guest that shuts down closes it right after answering) and is
// forgotten on a VMBus reset (reset()) or the next request.
#pragma once

#include "vm/ic/ic_device.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace vmgen::vm::ic {

class ShutdownDevice final : public IcDevice {
public:
    static constexpr Guid class_guid = protocols::vmbus::guid("0e0b6031-5213-4934-818b-38d90ced39db");
    // The guest's answer: status hv_s_ok or an HRESULT. Runs on the channel's worker without the device lock.
    using AnswerCallback = std::function<void(uint32_t status)>;

    explicit ShutdownDevice(Guid instance_id);

    // Asks the guest to shut down (flags 0, or 1 = forced). `reason` (UTF-8) goes into display_message as
    // UTF-16LE, NUL-terminated, cut to 1023 code units. Fails if the channel is not open or not negotiated
    // (or the ring is full); the answer arrives later (last_status, the callback).
    [[nodiscard]] Result<void> request_shutdown(bool force, std::string_view reason);
    // Likewise for a restart (flags 2, or 3 = forced).
    [[nodiscard]] Result<void> request_restart(bool force, std::string_view reason);

    // A request was sent on this open channel and not answered yet.
    [[nodiscard]] bool request_pending() const;
    // The guest's status for the most recent answered request (nullopt: none, or a newer one is pending).
    [[nodiscard]] std::optional<uint32_t> last_status() const;
    // Set before the guest can answer (a callback replaced while an answer is delivered may still run once).
    void set_answer_callback(AnswerCallback callback);

    void reset() override;

private:
    [[nodiscard]] Result<void> send_shutdown(uint32_t flags, std::string_view reason);
    void on_response(Lock& lock, const IcResponse& response) override;
    void on_closed(Lock& lock) override;

    std::optional<uint64_t> m_outstanding; // request id
    std::optional<uint32_t> m_last_status;
    AnswerCallback m_callback;
};

// UTF-8 to UTF-16 code units, at most `max_units` (never splitting a surrogate pair); malformed input becomes
// U+FFFD. For display_message.
[[nodiscard]] std::vector<uint16_t> utf16_from_utf8(std::string_view text, size_t max_units);

} // namespace vmgen::vm::ic
