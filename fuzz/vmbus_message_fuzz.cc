// libFuzzer target: VMBus channel messages from a hostile guest into VmbusServer.
//
// Input: a sequence of records [u8 kind][u8 length][length bytes]. kind % 8 == 7 signals an event on the
// channel connection id named by the first byte; otherwise the bytes are posted as a channel message on
// connection id 4 (kind % 8 < 6) or 1. Records that name message types get their type byte from the input,
// so every handler is reached. The server starts with an echo device; every INITIATE_CONTACT/REQUESTOFFERS/
// GPADL/OPEN path is exercised against 1 MiB of guest RAM. A crash or sanitizer report is a bug.
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/echo_device.h"
#include "vm/vmbus/server.h"
#include "vm/vmbus/synic_link.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

class NullSynic final : public vmgen::vm::SynicGuestSide {
public:
    bool post_message(uint32_t /*vp*/, uint8_t sint, uint32_t /*type*/, std::span<const uint8_t> payload) override
    {
        if (payload.size() > 240 || sint >= 16)
            std::abort();
        return true;
    }
    bool signal_event(uint32_t /*vp*/, uint8_t /*sint*/, uint32_t /*flag*/) override { return true; }
};

const vmgen::vm::GuestMemory& guest_memory()
{
    static vmgen::vm::GuestMemory* memory = [] {
        auto created = vmgen::vm::GuestMemory::create({{0, 1ull << 20}});
        if (!created)
            std::abort();
        return new vmgen::vm::GuestMemory(std::move(*created));
    }();
    return *memory;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace vmgen::vm::vmbus;
    NullSynic synic;
    EchoDevice echo(vmgen::protocols::vmbus::guid("11111111-2222-3333-4444-555555555555"));
    VmbusServer server(guest_memory(), synic);
    if (!server.add_device(echo))
        std::abort();
    std::span<const uint8_t> input(data, size);
    while (input.size() >= 2) {
        uint8_t kind = input[0];
        size_t length = std::min<size_t>(input[1], input.size() - 2);
        std::span<const uint8_t> body = input.subspan(2, length);
        input = input.subspan(2 + length);
        if (kind % 8 == 7) {
            uint32_t relid = body.empty() ? 1 : body[0];
            (void)server.on_signal_event(VmbusServer::connection_id_for(relid), 0);
            continue;
        }
        std::vector<uint8_t> message(body.begin(), body.end());
        if (message.size() >= 4) {
            // Bias toward real message types: the first byte picks one of 0..31, the rest of the u32 is zero.
            message[0] = static_cast<uint8_t>(message[0] % 32);
            message[1] = message[2] = message[3] = 0;
        }
        (void)server.on_post_message(kind % 8 < 6 ? 4 : 1, 1, message);
    }
    return 0;
}
