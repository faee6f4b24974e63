// libFuzzer target: the storvsp controller (vm/storvsp) fed hostile VMBus packets the way a guest's ring hands them
// to Device::on_packet: any packet type, flags, GPA-direct headers, vstor_packets of any size and content.
//
// Input: [u8 setup] then packets until the input runs out, each
//   [u8 kind][u16 payload length, little-endian][payload bytes][u8 header length / 8][header bytes]
// setup bit 0: run Linux's initialization exchange first (BEGIN, version 0x0602, PROPERTIES, END) so the fuzzer
// starts where I/O is accepted; bit 1: the channel refuses sends as "ring full" every other time (replies queue up
// and are flushed by on_wake); bit 2: a DVD drive with a medium at LUN 1; bit 3: detach and re-attach LUN 0 halfway.
// kind bits 0-1: packet type (0 inband, 1 GPA direct, 2 transfer pages, 3 completion); bit 2: completion requested;
// bit 3: the header's PFNs are rewritten to point into guest RAM (so data moves); bit 4: call on_wake after it;
// bit 5: call on_drained after it (the worker found the ring empty: a lone command runs on the calling thread,
// a burst goes to the I/O threads).
// The guest RAM is 1 MiB; disks are small MemoryDisks. A crash, sanitizer report, hang or abort is a bug.
#include "protocols/vmbus/ring.h"
#include "protocols/vmbus/storvsp.h"
#include "vm/memory/guest_memory.h"
#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/storvsp/storvsp.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace {

using namespace vmgen;
using namespace vmgen::vm;
namespace wire = protocols::vmbus::storvsp;
namespace vmbus_wire = protocols::vmbus;

class FuzzChannel final : public vmbus::Channel {
public:
    FuzzChannel(const GuestMemory& memory, bool flaky) : m_memory(memory), m_flaky(flaky) {}
    uint32_t relid() const override { return 1; }
    std::span<const uint8_t> open_user_data() const override { return {}; }
    const GuestMemory& memory() const override { return m_memory; }
    Result<void> send_packet(uint16_t type, uint16_t flags, uint64_t trans_id, std::span<const uint8_t> header,
                             std::span<const uint8_t> payload) override
    {
        (void)type;
        (void)flags;
        (void)trans_id;
        (void)header;
        std::lock_guard lock(m_mutex);
        // Linux reads at most 64 bytes of a storvsp packet: a reply must fit.
        if (payload.size() > sizeof(wire::VstorPacket))
            std::abort();
        if (m_flaky && (m_sends++ % 2) == 0)
            return fail("ring full");
        return {};
    }
    void request_drain() override {}

private:
    const GuestMemory& m_memory;
    bool m_flaky;
    std::mutex m_mutex;
    uint64_t m_sends = 0;
};

std::shared_ptr<scsi::ScsiDisk> make_disk(uint16_t lun)
{
    scsi::ScsiDiskOptions options;
    options.lun = lun;
    options.max_transfer_bytes = 64 * 1024;
    auto disk = scsi::ScsiDisk::create(std::make_unique<scsi::MemoryDisk>(256 * 1024, 512), options);
    if (!disk)
        std::abort();
    return std::shared_ptr<scsi::ScsiDisk>(std::move(*disk));
}

void send(storvsp::StorvspController& controller, FuzzChannel& channel, uint16_t type, uint16_t flags,
          uint64_t trans_id, std::span<const uint8_t> header, std::span<const uint8_t> payload)
{
    vmbus::Packet packet;
    packet.type = type;
    packet.flags = flags;
    packet.trans_id = trans_id;
    packet.header = header;
    packet.payload = payload;
    // A retry is the device saying "ask me again later": the fuzzer drains as the worker would (it ends the
    // burst, then waits for a wake-up).
    for (int i = 0; i < 4 && controller.on_packet(channel, packet) == vmbus::PacketAction::retry; ++i) {
        controller.on_drained(channel);
        controller.on_wake(channel);
    }
}

void init_like_linux(storvsp::StorvspController& controller, FuzzChannel& channel)
{
    for (uint32_t operation : {uint32_t {wire::op_begin_initialization}, uint32_t {wire::op_query_protocol_version},
                               uint32_t {wire::op_query_properties}, uint32_t {wire::op_end_initialization}}) {
        wire::VstorPacket packet {};
        packet.operation = operation;
        packet.flags = wire::request_completion_flag;
        packet.version.major_minor = wire::version_win10;
        send(controller, channel, vmbus_wire::packet_type_data_inband,
             vmbus_wire::packet_flag_completion_requested, UINT64_MAX - 2, {},
             std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet)));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1)
        return 0;
    static GuestMemory memory = std::move(*GuestMemory::create({{0, 1ull << 20}}));
    uint8_t setup = data[0];
    size_t at = 1;

    storvsp::ControllerOptions options;
    options.name = "fuzz";
    options.io_threads = 2;
    options.max_transfer_bytes = 64 * 1024;
    options.max_in_flight = 8;
    auto created = storvsp::StorvspController::create(options);
    if (!created)
        std::abort();
    auto& controller = **created;
    if (!controller.attach(0, make_disk(0)))
        std::abort();
    if (setup & 4) {
        scsi::ScsiDvdOptions dvd_options;
        dvd_options.lun = 1;
        auto dvd = std::make_shared<scsi::ScsiDvd>(dvd_options);
        (void)dvd->change_media(std::make_unique<scsi::MemoryDisk>(32 * 2048, 2048));
        if (!controller.attach(1, dvd))
            std::abort();
    }
    FuzzChannel channel(memory, (setup & 2) != 0);
    if (!controller.on_open(channel))
        std::abort();
    if (setup & 1)
        init_like_linux(controller, channel);

    size_t half = size / 2;
    bool swapped = false;
    uint64_t trans_id = 1;
    while (at + 3 <= size) {
        uint8_t kind = data[at];
        size_t length = data[at + 1] | (size_t {data[at + 2]} << 8);
        at += 3;
        length = std::min(length, size - at);
        std::vector<uint8_t> payload(data + at, data + at + length); // own allocation: ASan sees overreads
        at += length;
        std::vector<uint8_t> header;
        if (at < size) {
            size_t header_length = std::min<size_t>(size_t {data[at]} * 8, (size - at - 1) / 8 * 8);
            ++at;
            header.assign(data + at, data + at + header_length);
            at += header_length;
        }
        if ((kind & 8) && header.size() >= 16) {
            // Keep the PFNs inside the 256 pages of RAM so transfers really happen.
            for (size_t i = 16; i + 8 <= header.size(); i += 8)
                header[i + 1] = header[i + 2] = header[i + 3] = header[i + 4] = header[i + 5] = header[i + 6] =
                    header[i + 7] = 0;
        }
        static constexpr uint16_t types[] = {vmbus_wire::packet_type_data_inband,
                                             vmbus_wire::packet_type_data_using_gpa_direct,
                                             vmbus_wire::packet_type_data_using_transfer_pages,
                                             vmbus_wire::packet_type_completion};
        uint16_t flags = (kind & 4) ? vmbus_wire::packet_flag_completion_requested : 0;
        send(controller, channel, types[kind & 3], flags, trans_id++, header, payload);
        // The worker found the ring empty: a lone command may run on this thread, a burst goes to the I/O threads.
        if (kind & 32)
            controller.on_drained(channel);
        if (kind & 16)
            controller.on_wake(channel);
        if ((setup & 8) && !swapped && at >= half) {
            swapped = true;
            if (!controller.detach(0) || !controller.attach(0, make_disk(0)))
                std::abort();
        }
    }
    controller.on_drained(channel);
    controller.on_close(channel); // waits for the I/O threads
    controller.reset();
    return 0;
}
