// Test helper for the storvsp tests: a VMBus server with one StorvspController, the ScriptedGuest for the guest's
// hv_vmbus, and the guest's storvsc rebuilt from Linux 6.1 drivers/scsi/storvsc_drv.c: the initialization
// exchange of storvsc_channel_init (every packet 64 bytes, inband, completion requested, trans_id
// VMBUS_RQST_INIT) and EXECUTE_SRB as storvsc_queuecommand/storvsc_do_io build it (inband without data,
// GPA direct with one range otherwise, trans_id = tag + 1).
#pragma once

#include "protocols/vmbus/storvsp.h"
#include "vm/scsi/scsi_lun.h"
#include "vm/storvsp/storvsp.h"
#include "vm/vmbus/scripted_guest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::storvsp::testing {

namespace wire = protocols::vmbus::storvsp;
using vmbus::testing::GuestRing;
using vmbus::testing::ScriptedGuest;

inline constexpr uint64_t rqst_init = UINT64_MAX - 2;  // VMBUS_RQST_INIT
inline constexpr uint64_t rqst_reset = UINT64_MAX - 3; // VMBUS_RQST_RESET
inline constexpr uint16_t linux_versions[] = {wire::version_win10, wire::version_win8_1, wire::version_win8};

// One SRB as the guest sends it.
struct Srb {
    std::vector<uint8_t> cdb;
    scsi::DataDirection direction = scsi::DataDirection::None;
    uint32_t length = 0;  // data_transfer_length (and the GPA range's byte_count)
    uint64_t gpa = 0;     // the buffer in guest memory (byte_offset = gpa % 4096)
    uint8_t lun = 0;
    uint8_t target = 0;
    uint8_t path = 0;
};

struct Completion {
    uint64_t trans_id = 0;
    uint16_t type = 0;
    size_t size = 0; // payload bytes
    wire::VstorPacket packet {};

    [[nodiscard]] const wire::VmscsiRequest& srb() const { return packet.srb; }
    [[nodiscard]] uint8_t sense_key() const { return packet.srb.cdb_or_sense[2] & 0x0f; }
    [[nodiscard]] uint8_t asc() const { return packet.srb.cdb_or_sense[12]; }
    [[nodiscard]] uint8_t ascq() const { return packet.srb.cdb_or_sense[13]; }
};

class StorvscTest : public ::testing::Test {
public:
    // Guest memory for data buffers (below 16 MiB; RAM is 0..16 MiB).
    static constexpr uint64_t buffer_gpa = 8ull << 20;

protected:
    using Channel = ScriptedGuest::OpenedChannel;

    static constexpr vmbus::Guid instance = protocols::vmbus::guid("7d1e6a52-1f3c-4f63-9e57-5c0a8f2b9d01");

    explicit StorvscTest(ControllerOptions options = default_options());
    ~StorvscTest() override;
    static ControllerOptions default_options();

    // Opens the controller's channel (32 + 32 pages: Linux's 128 KiB rings, control page included).
    void open(uint32_t send_pages = 32, uint32_t receive_pages = 32);
    // storvsc_channel_init: BEGIN, versions (newest first) until one is accepted, PROPERTIES, END. Returns the
    // properties; ASSERTs every step.
    wire::ChannelProperties init_like_linux(std::span<const uint16_t> versions = linux_versions);

    // Sends a 64-byte vstor_packet inband (completion requested unless `flags` says otherwise).
    bool send_vstor(const wire::VstorPacket& packet, uint64_t trans_id,
                    uint16_t flags = protocols::vmbus::packet_flag_completion_requested);
    // Sends raw payload bytes inband.
    bool send_bytes(std::span<const uint8_t> payload, uint64_t trans_id,
                    uint16_t flags = protocols::vmbus::packet_flag_completion_requested);
    // The SRB packet storvsc builds.
    static wire::VstorPacket srb_packet(const Srb& srb);
    // The GPA-direct header for one range over [gpa, gpa + length).
    static std::vector<uint8_t> gpa_header(uint64_t gpa, uint32_t length);
    // Sends the SRB (GPA direct when it has data) with trans_id.
    bool send_srb(const Srb& srb, uint64_t trans_id);
    // Writes the SRBs (trans_id 1, 2, ...) into the ring and signals once, after the worker's poll window has run
    // out: the worker reads them as one burst.
    bool send_burst(const std::vector<Srb>& srbs);
    // Sends and waits for its completion.
    std::optional<Completion> execute(const Srb& srb);
    // The next packet from the host.
    std::optional<Completion> receive(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Waits until the controller counted `count` invalid requests.
    bool wait_invalid(uint64_t count);

    void write_guest(uint64_t gpa, std::span<const uint8_t> bytes);
    std::vector<uint8_t> read_guest(uint64_t gpa, size_t size);

    std::unique_ptr<StorvspController> controller; // outlives the server, which closes its channel
    GuestMemory memory;
    vmbus::testing::FakeSynic synic;
    std::unique_ptr<vmbus::VmbusServer> server;
    std::unique_ptr<ScriptedGuest> guest;
    std::optional<protocols::vmbus::OfferChannel> offer;
    Channel channel;
    uint64_t next_tag = 0;
};

} // namespace vmgen::vm::storvsp::testing
