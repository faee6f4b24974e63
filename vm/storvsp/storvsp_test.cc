// storvsp driven as Linux 6.1's storvsc drives it (the exchanges of storvsc_drv.c), plus every hostile case:
// malformed packets, bad SRBs, buffers outside guest RAM, a ring that fills up, hot add/remove while I/O runs.
#include "vm/storvsp/storvsc_test_guest.h"

#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace vmgen::vm::storvsp::testing {
namespace {

namespace op = protocols::scsi::opcode;
using scsi::DataDirection;
using scsi::MemoryDisk;
using scsi::testing::inquiry;
using scsi::testing::report_luns;
using scsi::testing::rw10;
using scsi::testing::test_unit_ready;

constexpr uint64_t disk_bytes = 4ull << 20;

// A MemoryDisk whose reads can be held at a gate (to keep a command in flight).
class GatedDisk final : public disk::BlockDevice {
public:
    explicit GatedDisk(std::shared_ptr<MemoryDisk> inner) : m_inner(std::move(inner)) {}
    [[nodiscard]] const disk::DiskInfo& info() const override { return m_inner->info(); }
    [[nodiscard]] bool read_only() const override { return m_inner->read_only(); }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        std::unique_lock lock(m_mutex);
        ++m_waiting;
        m_cv.notify_all();
        m_cv.wait(lock, [&] { return m_open; });
        --m_waiting;
        lock.unlock();
        return m_inner->read(offset, out);
    }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override { return m_inner->write(offset, in); }
    Result<void> flush() override { return m_inner->flush(); }
    Result<void> discard(uint64_t offset, uint64_t length) override { return m_inner->discard(offset, length); }

    void close_gate()
    {
        std::lock_guard lock(m_mutex);
        m_open = false;
    }
    void open_gate()
    {
        std::lock_guard lock(m_mutex);
        m_open = true;
        m_cv.notify_all();
    }
    bool wait_waiting(unsigned count)
    {
        std::unique_lock lock(m_mutex);
        return m_cv.wait_for(lock, std::chrono::seconds(5), [&] { return m_waiting >= count; });
    }

private:
    std::shared_ptr<MemoryDisk> m_inner;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_open = true;
    unsigned m_waiting = 0;
};

// Forwards to a shared MemoryDisk so the test can look at the bytes and the flush count.
class SharedDisk final : public disk::BlockDevice {
public:
    explicit SharedDisk(std::shared_ptr<MemoryDisk> inner) : m_inner(std::move(inner)) {}
    [[nodiscard]] const disk::DiskInfo& info() const override { return m_inner->info(); }
    [[nodiscard]] bool read_only() const override { return m_inner->read_only(); }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override { return m_inner->read(offset, out); }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override { return m_inner->write(offset, in); }
    Result<bool> read_nowait(uint64_t offset, std::span<uint8_t> out) override
    {
        return m_inner->read_nowait(offset, out);
    }
    Result<bool> write_nowait(uint64_t offset, std::span<const uint8_t> in) override
    {
        return m_inner->write_nowait(offset, in);
    }
    Result<void> flush() override { return m_inner->flush(); }
    Result<void> discard(uint64_t offset, uint64_t length) override { return m_inner->discard(offset, length); }

private:
    std::shared_ptr<MemoryDisk> m_inner;
};

std::shared_ptr<scsi::ScsiDisk> make_disk(std::unique_ptr<disk::BlockDevice> device, uint16_t lun,
                                          bool read_only = false)
{
    scsi::ScsiDiskOptions options;
    options.lun = lun;
    options.read_only = read_only;
    options.max_transfer_bytes = 2u << 20;
    auto disk = scsi::ScsiDisk::create(std::move(device), options);
    EXPECT_TRUE(disk) << (disk ? "" : disk.error().message());
    return disk ? std::shared_ptr<scsi::ScsiDisk>(std::move(*disk)) : nullptr;
}

// Attaches a 1 MiB disk whose reads wait at a gate at location `lun`; the gate, or null if the attach failed.
GatedDisk* attach_gated(StorvspController& controller, uint16_t lun)
{
    auto gated = std::make_unique<GatedDisk>(std::make_shared<MemoryDisk>(1 << 20, 512));
    GatedDisk* gate = gated.get();
    return controller.attach(lun, make_disk(std::move(gated), lun)) ? gate : nullptr;
}

Srb srb(std::vector<uint8_t> cdb, DataDirection direction = DataDirection::None, uint32_t length = 0,
        uint8_t lun = 0)
{
    Srb s;
    s.cdb = std::move(cdb);
    s.direction = direction;
    s.length = length;
    s.gpa = StorvscTest::buffer_gpa;
    s.lun = lun;
    return s;
}

std::vector<uint8_t> lba_pattern(uint64_t first_lba, size_t blocks, uint8_t seed)
{
    std::vector<uint8_t> out(blocks * 512);
    for (size_t b = 0; b < blocks; ++b) {
        uint64_t lba = first_lba + b;
        std::memcpy(out.data() + b * 512, &lba, 8);
        for (size_t i = 8; i < 512; ++i)
            out[b * 512 + i] = static_cast<uint8_t>(lba * 7 + i + seed);
    }
    return out;
}

class StorvspTest : public StorvscTest {
protected:
    StorvspTest()
    {
        backing = std::make_shared<MemoryDisk>(disk_bytes, 512);
        EXPECT_TRUE(controller->attach(0, make_disk(std::make_unique<SharedDisk>(backing), 0)));
    }
    std::shared_ptr<MemoryDisk> backing;
};

TEST_F(StorvspTest, OffersTheScsiControllerClass)
{
    ASSERT_TRUE(offer);
    EXPECT_EQ(offer->offer.interface_type, scsi_class_id);
    EXPECT_EQ(offer->offer.interface_instance, instance);
}

TEST_F(StorvspTest, InitializesLikeLinuxAndAdvertisesOneChannel)
{
    open();
    auto properties = init_like_linux();
    EXPECT_EQ(properties.max_transfer_bytes, 2u << 20);
    EXPECT_EQ(properties.flags & wire::properties_multi_channel, 0u);
    EXPECT_EQ(properties.max_channel_count, 0u);
    auto stats = controller->stats();
    EXPECT_TRUE(stats.ready);
    EXPECT_EQ(stats.protocol_version, wire::version_win10);
}

TEST_F(StorvspTest, UnknownVersionsAreRefusedUntilOneMatches)
{
    open();
    const uint16_t versions[] = {0x0700, 0x0603, wire::version_win8};
    init_like_linux(versions);
    EXPECT_EQ(controller->stats().protocol_version, wire::version_win8);
    EXPECT_TRUE(controller->stats().ready);
}

TEST_F(StorvspTest, VersionQueryAnswersRevisionMismatch)
{
    open();
    wire::VstorPacket packet {};
    packet.operation = wire::op_begin_initialization;
    ASSERT_TRUE(send_vstor(packet, rqst_init));
    ASSERT_TRUE(receive());
    packet.operation = wire::op_query_protocol_version;
    packet.version.major_minor = 0x0101;
    ASSERT_TRUE(send_vstor(packet, rqst_init));
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->packet.operation, wire::op_complete_io);
    EXPECT_EQ(reply->packet.status, wire::status_revision_mismatch);
}

TEST_F(StorvspTest, PreWindows8PacketsAreAcceptedForOldVersions)
{
    open();
    // A pre-Windows 8 guest sends 48-byte packets (no Windows 8 extension) and negotiates 4.2.
    std::vector<uint8_t> small(wire::pre_win8_packet_size);
    auto send_op = [&](uint32_t operation, uint16_t version = 0) {
        wire::VstorPacket packet {};
        packet.operation = operation;
        packet.version.major_minor = version;
        std::memcpy(small.data(), &packet, small.size());
        ASSERT_TRUE(send_bytes(small, rqst_init));
        auto reply = receive();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->packet.status, 0u) << "operation " << operation;
    };
    send_op(wire::op_begin_initialization);
    send_op(wire::op_query_protocol_version, wire::version_win7);
    send_op(wire::op_query_properties);
    send_op(wire::op_end_initialization);
    EXPECT_EQ(controller->stats().protocol_version, wire::version_win7);

    auto packet = srb_packet(srb(test_unit_ready()));
    std::memcpy(small.data(), &packet, small.size());
    ASSERT_TRUE(send_bytes(small, 5));
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
}

TEST_F(StorvspTest, SrbBeforeInitializationIsRefused)
{
    open();
    auto reply = execute(srb(test_unit_ready()));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->packet.status, wire::status_invalid_device_state);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_invalid_request);
}

TEST_F(StorvspTest, WritesAndReadsMoveGuestPages)
{
    open();
    init_like_linux();
    // 24 blocks starting 100 bytes into a page: the range spans pages unevenly.
    auto data = lba_pattern(40, 24, 1);
    uint64_t gpa = buffer_gpa + 100;
    write_guest(gpa, data);
    Srb write = srb(rw10(op::write_10, 40, 24, 0x08 /* FUA */), DataDirection::Out, 24 * 512);
    write.gpa = gpa;
    unsigned flushes = backing->flushes();
    auto reply = execute(write);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    EXPECT_EQ(reply->srb().scsi_status, 0);
    EXPECT_EQ(reply->srb().data_transfer_length, 24u * 512);
    EXPECT_GT(backing->flushes(), flushes) << "FUA must reach stable storage before the completion";
    std::vector<uint8_t> on_disk(data.size());
    ASSERT_TRUE(backing->read(40 * 512, on_disk));
    EXPECT_EQ(on_disk, data);

    Srb read = srb(rw10(op::read_10, 40, 24), DataDirection::In, 24 * 512);
    read.gpa = (4ull << 20) + 4000;
    reply = execute(read);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    EXPECT_EQ(reply->srb().data_transfer_length, 24u * 512);
    EXPECT_EQ(read_guest(read.gpa, data.size()), data);
    auto stats = controller->stats();
    EXPECT_EQ(stats.bytes_read, 24u * 512);
    EXPECT_EQ(stats.bytes_written, 24u * 512);
}

TEST_F(StorvspTest, SynchronizeCacheFlushesBeforeCompleting)
{
    open();
    init_like_linux();
    unsigned flushes = backing->flushes();
    auto reply = execute(srb({op::synchronize_cache_10, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    EXPECT_GT(backing->flushes(), flushes);
}

TEST_F(StorvspTest, CheckConditionCarriesAutosense)
{
    open();
    init_like_linux();
    uint32_t blocks = disk_bytes / 512;
    auto reply = execute(srb(rw10(op::read_10, blocks - 1, 2), DataDirection::In, 1024));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().scsi_status, 0x02);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_error | wire::srb_status_autosense_valid);
    EXPECT_EQ(reply->srb().sense_info_length, 18);
    EXPECT_EQ(reply->srb().cdb_or_sense[0], 0x70);
    EXPECT_EQ(reply->sense_key(), 0x05); // ILLEGAL REQUEST
    EXPECT_EQ(reply->asc(), 0x21);       // LOGICAL BLOCK ADDRESS OUT OF RANGE
    EXPECT_EQ(reply->ascq(), 0x00);

    // A guest without a sense buffer gets the error without autosense.
    Srb no_sense = srb(rw10(op::read_10, blocks, 1), DataDirection::In, 512);
    auto packet = srb_packet(no_sense);
    packet.srb.sense_info_length = 0;
    auto header = gpa_header(no_sense.gpa, 512);
    ASSERT_TRUE(guest->send_packet(channel, protocols::vmbus::packet_type_data_using_gpa_direct,
                                   protocols::vmbus::packet_flag_completion_requested, 77, header,
                                   std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet))));
    reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_error);
    EXPECT_EQ(reply->srb().sense_info_length, 0);
}

TEST_F(StorvspTest, ShortTransfersReportTheBytesMoved)
{
    open();
    init_like_linux();
    // INQUIRY with 255 bytes allocated: the standard data is shorter; storvsc computes resid from it.
    auto reply = execute(srb(inquiry(false, 0, 255), DataDirection::In, 255));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    EXPECT_GE(reply->srb().data_transfer_length, 36u);
    EXPECT_LT(reply->srb().data_transfer_length, 255u);
    auto data = read_guest(buffer_gpa, 36);
    EXPECT_EQ(data[0], 0x00); // disk
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&data[8]), 4), "Msft");
}

TEST_F(StorvspTest, LinuxScanSeesOnlyTheAttachedLuns)
{
    ASSERT_TRUE(controller->attach(3, make_disk(std::make_unique<MemoryDisk>(1 << 20, 4096), 3)));
    ASSERT_TRUE(controller->detach(0));
    open();
    init_like_linux();
    // scsi_scan_host: INQUIRY to LUN 0 of every channel and target. Nothing is at LUN 0: "no LUN here", success.
    for (uint8_t path = 0; path < wire::linux_max_channels; ++path) {
        for (uint8_t target = 0; target < wire::linux_max_targets; ++target) {
            Srb s = srb(inquiry(false, 0, 36), DataDirection::In, 36);
            s.path = path;
            s.target = target;
            write_guest(buffer_gpa, std::vector<uint8_t>(36, 0));
            auto reply = execute(s);
            ASSERT_TRUE(reply);
            EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
            EXPECT_EQ(read_guest(buffer_gpa, 1)[0], 0x7f) << "path " << int(path) << " target " << int(target);
        }
    }
    // REPORT LUNS at target 0 (sent to LUN 0, which is empty) lists LUN 3; elsewhere the list is empty.
    auto reply = execute(srb(report_luns(64), DataDirection::In, 64));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    auto list = read_guest(buffer_gpa, 16);
    EXPECT_EQ(list[3], 8); // one 8-byte entry
    EXPECT_EQ(list[9], 3);
    Srb other = srb(report_luns(64), DataDirection::In, 64);
    other.target = 1;
    reply = execute(other);
    ASSERT_TRUE(reply);
    EXPECT_EQ(read_guest(buffer_gpa, 4)[3], 0);
    // Any other command to an empty address: SRB_STATUS_INVALID_LUN (Linux then removes the device).
    reply = execute(srb(test_unit_ready(), DataDirection::None, 0, 0));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_invalid_lun);
    // LUN 3 answers, with its 4096-byte blocks.
    reply = execute(srb(scsi::testing::read_capacity_10(), DataDirection::In, 8, 3));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    auto capacity = read_guest(buffer_gpa, 8);
    EXPECT_EQ(capacity[6], 0x10); // 4096 = 0x1000
}

TEST_F(StorvspTest, ReportLunsToAnAttachedLunListsTheWholeTarget)
{
    // Linux sends REPORT LUNS to LUN 0, which usually holds a disk: the answer must list every LUN.
    ASSERT_TRUE(controller->attach(1, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 1)));
    ASSERT_TRUE(controller->attach(2, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 2)));
    open();
    init_like_linux();
    for (uint8_t lun : {uint8_t {0}, uint8_t {2}}) {
        auto reply = execute(srb(report_luns(4096), DataDirection::In, 4096, lun));
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
        EXPECT_EQ(reply->srb().data_transfer_length, 8u + 3 * 8);
        auto list = read_guest(buffer_gpa, 32);
        EXPECT_EQ(list[3], 24) << "sent to LUN " << int(lun);
        EXPECT_EQ(list[9], 0);
        EXPECT_EQ(list[17], 1);
        EXPECT_EQ(list[25], 2);
    }
}

TEST_F(StorvspTest, HotAddAndRemoveTellTheGuestToRescan)
{
    open();
    init_like_linux();
    ASSERT_TRUE(controller->attach(5, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 5)));
    auto notice = receive();
    ASSERT_TRUE(notice);
    EXPECT_EQ(notice->trans_id, 0u);
    EXPECT_EQ(notice->type, protocols::vmbus::packet_type_data_inband);
    EXPECT_EQ(notice->packet.operation, wire::op_enumerate_bus);
    auto reply = execute(srb(test_unit_ready(), DataDirection::None, 0, 5));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);

    auto removed = controller->detach(5);
    ASSERT_TRUE(removed);
    EXPECT_TRUE(*removed);
    notice = receive();
    ASSERT_TRUE(notice);
    EXPECT_EQ(notice->packet.operation, wire::op_enumerate_bus);
    // storvsc_host_scan's TEST UNIT READY to the removed LUN.
    reply = execute(srb(test_unit_ready(), DataDirection::None, 0, 5));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_invalid_lun);
    EXPECT_EQ(controller->stats().rescans, 2u);
    EXPECT_EQ(controller->attached_luns(), std::vector<unsigned> {0});
    EXPECT_FALSE(controller->detach(5));
    EXPECT_FALSE(controller->attach(64, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 0)));
    EXPECT_FALSE(controller->attach(0, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 0)));
}

TEST_F(StorvspTest, NoRescanNoticeBeforeTheGuestIsReady)
{
    open();
    ASSERT_TRUE(controller->attach(1, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 1)));
    EXPECT_FALSE(receive(std::chrono::milliseconds(100)));
    EXPECT_EQ(controller->stats().rescans, 0u);
}

TEST_F(StorvspTest, DetachWaitsForCommandsInFlight)
{
    GatedDisk* gate = attach_gated(*controller, 2);
    ASSERT_NE(gate, nullptr);
    open();
    init_like_linux();
    gate->close_gate();
    ASSERT_TRUE(send_srb(srb(rw10(op::read_10, 0, 8), DataDirection::In, 4096, 2), 42));
    ASSERT_TRUE(gate->wait_waiting(1));
    auto detached = std::async(std::launch::async, [&] { return controller->detach(2); });
    EXPECT_EQ(detached.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "detach returned while a command was still reading the image";
    gate->open_gate();
    auto result = detached.get();
    EXPECT_TRUE(result);
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->trans_id, 42u);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
}

TEST_F(StorvspTest, ResetBusWaitsForOutstandingIoAndResetsUnits)
{
    GatedDisk* gate = attach_gated(*controller, 1);
    ASSERT_NE(gate, nullptr);
    scsi::ScsiDvdOptions dvd_options;
    dvd_options.lun = 2;
    auto dvd = std::make_shared<scsi::ScsiDvd>(dvd_options);
    ASSERT_TRUE(controller->attach(2, dvd));
    open();
    init_like_linux();
    auto reply = execute(srb(scsi::testing::prevent_allow(1), DataDirection::None, 0, 2));
    ASSERT_TRUE(reply);
    EXPECT_TRUE(dvd->removal_prevented());

    gate->close_gate();
    ASSERT_TRUE(send_srb(srb(rw10(op::read_10, 0, 1), DataDirection::In, 512, 1), 50));
    ASSERT_TRUE(gate->wait_waiting(1));
    wire::VstorPacket reset {};
    reset.operation = wire::op_reset_bus;
    reset.flags = wire::request_completion_flag;
    ASSERT_TRUE(send_vstor(reset, rqst_reset));
    EXPECT_FALSE(receive(std::chrono::milliseconds(150))) << "reset completed with a command outstanding";
    gate->open_gate();
    auto first = receive();
    auto second = receive();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->trans_id, 50u) << "the outstanding command completes before the reset";
    EXPECT_EQ(second->trans_id, rqst_reset);
    EXPECT_EQ(second->packet.status, 0u);
    EXPECT_FALSE(dvd->removal_prevented());
    EXPECT_EQ(controller->stats().resets, 1u);
}

TEST_F(StorvspTest, HostileSrbsGetInvalidRequest)
{
    open();
    init_like_linux();
    uint64_t invalid = controller->stats().invalid_requests;
    auto expect_invalid = [&](const char* what, auto&& send) {
        SCOPED_TRACE(what);
        uint64_t trans_id = 1000 + invalid;
        ASSERT_TRUE(send(trans_id));
        auto reply = receive();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->trans_id, trans_id);
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_invalid_request);
        EXPECT_EQ(reply->srb().data_transfer_length, 0u);
        EXPECT_EQ(controller->stats().invalid_requests, ++invalid);
    };
    auto send_with = [&](wire::VstorPacket packet, std::vector<uint8_t> header, uint64_t trans_id) {
        auto bytes = std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet));
        if (header.empty())
            return send_bytes(bytes, trans_id);
        return guest->send_packet(channel, protocols::vmbus::packet_type_data_using_gpa_direct,
                                  protocols::vmbus::packet_flag_completion_requested, trans_id, header, bytes);
    };
    Srb read = srb(rw10(op::read_10, 0, 8), DataDirection::In, 4096);

    expect_invalid("PFN outside guest RAM", [&](uint64_t id) {
        Srb s = read;
        s.gpa = 1ull << 40;
        return send_with(srb_packet(s), gpa_header(s.gpa, s.length), id);
    });
    expect_invalid("PFN in the last page plus one", [&](uint64_t id) {
        Srb s = read;
        s.gpa = (16ull << 20) - 2048;
        return send_with(srb_packet(s), gpa_header(s.gpa, s.length), id);
    });
    expect_invalid("data_transfer_length beyond the ranges", [&](uint64_t id) {
        auto packet = srb_packet(read);
        packet.srb.data_transfer_length = 8192;
        return send_with(packet, gpa_header(read.gpa, 4096), id);
    });
    expect_invalid("data without a buffer", [&](uint64_t id) {
        auto packet = srb_packet(read);
        return send_with(packet, {}, id);
    });
    expect_invalid("CDB length 0", [&](uint64_t id) {
        auto packet = srb_packet(srb(test_unit_ready()));
        packet.srb.cdb_length = 0;
        return send_with(packet, {}, id);
    });
    expect_invalid("CDB length 17", [&](uint64_t id) {
        auto packet = srb_packet(srb(test_unit_ready()));
        packet.srb.cdb_length = 17;
        return send_with(packet, {}, id);
    });
    expect_invalid("unknown direction", [&](uint64_t id) {
        auto packet = srb_packet(read);
        packet.srb.data_in = 7;
        return send_with(packet, gpa_header(read.gpa, 4096), id);
    });
    expect_invalid("a buffer without a direction", [&](uint64_t id) {
        auto packet = srb_packet(read);
        packet.srb.data_in = wire::data_unknown;
        return send_with(packet, gpa_header(read.gpa, 4096), id);
    });
    expect_invalid("GPA header with no ranges", [&](uint64_t id) {
        std::vector<uint8_t> header(16, 0);
        return send_with(srb_packet(read), header, id);
    });
    expect_invalid("GPA range with byte_offset 4096", [&](uint64_t id) {
        auto header = gpa_header(read.gpa, 4096);
        uint32_t offset = 4096;
        std::memcpy(header.data() + 12, &offset, 4);
        return send_with(srb_packet(read), header, id);
    });
    expect_invalid("GPA range list longer than the header", [&](uint64_t id) {
        auto header = gpa_header(read.gpa, 4096);
        uint32_t length = 3 * 4096;
        std::memcpy(header.data() + 8, &length, 4);
        auto packet = srb_packet(read);
        packet.srb.data_transfer_length = length;
        return send_with(packet, header, id);
    });

    // Still serving: a good command works afterwards.
    auto reply = execute(read);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
}

TEST_F(StorvspTest, MalformedPacketsAreDroppedOrRefused)
{
    open();
    init_like_linux();
    uint64_t invalid = controller->stats().invalid_requests;
    // Shorter than a vstor_packet: ignored (no completion can be formed), counted.
    std::vector<uint8_t> tiny(20, 0);
    ASSERT_TRUE(send_bytes(tiny, 9));
    EXPECT_TRUE(wait_invalid(invalid + 1));
    // A 48-byte packet after Windows 10 was agreed is short too.
    std::vector<uint8_t> old(wire::pre_win8_packet_size, 0);
    ASSERT_TRUE(send_bytes(old, 10));
    EXPECT_TRUE(wait_invalid(invalid + 2));
    EXPECT_FALSE(receive(std::chrono::milliseconds(50)));
    // Operations the guest must not send, or unknown ones: a failure status.
    for (uint32_t operation : {uint32_t {wire::op_complete_io}, uint32_t {wire::op_enumerate_bus},
                               uint32_t {wire::op_remove_device}, uint32_t {99}, uint32_t {0}}) {
        wire::VstorPacket packet {};
        packet.operation = operation;
        ASSERT_TRUE(send_vstor(packet, 11));
        auto reply = receive();
        ASSERT_TRUE(reply) << operation;
        EXPECT_EQ(reply->packet.status, wire::status_invalid_parameter) << operation;
    }
    // Sub-channels and FC data are not offered.
    for (uint32_t operation : {uint32_t {wire::op_create_sub_channels}, uint32_t {wire::op_fchba_data}}) {
        wire::VstorPacket packet {};
        packet.operation = operation;
        ASSERT_TRUE(send_vstor(packet, 12));
        auto reply = receive();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->packet.status, wire::status_not_supported);
    }
    // Another packet type (transfer pages): ignored.
    ASSERT_TRUE(guest->send_packet(channel, protocols::vmbus::packet_type_data_using_transfer_pages, 0, 13,
                                   std::vector<uint8_t>(8, 0), std::vector<uint8_t>(64, 0)));
    EXPECT_TRUE(wait_invalid(invalid + 8));
    // A second initialization out of order.
    wire::VstorPacket packet {};
    packet.operation = wire::op_query_protocol_version;
    packet.version.major_minor = wire::version_win10;
    ASSERT_TRUE(send_vstor(packet, 14));
    auto reply = receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->packet.status, wire::status_invalid_device_state);
    // Without a completion request nothing comes back.
    packet = {};
    packet.operation = 99;
    ASSERT_TRUE(send_vstor(packet, 15, 0));
    EXPECT_FALSE(receive(std::chrono::milliseconds(50)));
    // And I/O still works.
    reply = execute(srb(test_unit_ready()));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
}

TEST_F(StorvspTest, ManyCommandsInFlightAllCompleteThroughAFullRing)
{
    // A host -> guest ring of 2 data pages holds ~90 completions: 300 commands fill it while the guest does not
    // read; every completion must still arrive, once, after the guest drains.
    open(/*send_pages=*/64, /*receive_pages=*/3);
    init_like_linux();
    auto data = lba_pattern(0, 8, 3);
    ASSERT_TRUE(backing->write(0, data));
    constexpr unsigned count = 300;
    std::set<uint64_t> expected;
    for (unsigned i = 0; i < count; ++i) {
        Srb s = srb(rw10(op::read_10, 0, 1), DataDirection::In, 512);
        s.gpa = buffer_gpa + (i % 64) * 4096;
        uint64_t id = 100 + i;
        ASSERT_TRUE(send_srb(s, id)) << i;
        expected.insert(id);
    }
    // The guest reads nothing until the ring is full and completions wait in the host (which then stops reading
    // new commands until the guest makes room).
    ASSERT_TRUE(vmbus::testing::wait_until([&] { return controller->stats().deferred > 0; }));
    std::set<uint64_t> seen;
    while (seen.size() < count) {
        auto reply = receive();
        ASSERT_TRUE(reply) << "after " << seen.size() << " completions";
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
        EXPECT_TRUE(seen.insert(reply->trans_id).second) << "duplicate completion " << reply->trans_id;
    }
    EXPECT_EQ(seen, expected);
    EXPECT_EQ(read_guest(buffer_gpa, 512), std::vector<uint8_t>(data.begin(), data.begin() + 512));
}

TEST_F(StorvspTest, CloseWithCommandsOutstandingIsClean)
{
    GatedDisk* gate = attach_gated(*controller, 1);
    ASSERT_NE(gate, nullptr);
    open();
    init_like_linux();
    gate->close_gate();
    ASSERT_TRUE(send_srb(srb(rw10(op::read_10, 0, 1), DataDirection::In, 512, 1), 60));
    ASSERT_TRUE(gate->wait_waiting(1));
    auto closed = std::async(std::launch::async, [&] { guest->close(channel.relid); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate->open_gate();
    closed.get();
    EXPECT_TRUE(vmbus::testing::wait_until([&] { return !server->channel_open(channel.relid); }));
    EXPECT_FALSE(controller->stats().ready);
}

class StorvspLimitTest : public StorvscTest {
protected:
    static ControllerOptions limited()
    {
        auto options = default_options();
        options.max_in_flight = 2;
        return options;
    }
    StorvspLimitTest() : StorvscTest(limited()) {}
};

TEST_F(StorvspLimitTest, CommandsBeyondTheLimitWaitInTheRing)
{
    GatedDisk* gate = attach_gated(*controller, 0);
    ASSERT_NE(gate, nullptr);
    open();
    init_like_linux();
    gate->close_gate();
    for (uint64_t id = 1; id <= 6; ++id)
        ASSERT_TRUE(send_srb(srb(rw10(op::read_10, 0, 1), DataDirection::In, 512), id));
    ASSERT_TRUE(gate->wait_waiting(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(controller->stats().commands, 2u) << "more than max_in_flight commands were taken";
    gate->open_gate();
    std::set<uint64_t> seen;
    while (seen.size() < 6) {
        auto reply = receive();
        ASSERT_TRUE(reply) << "after " << seen.size();
        seen.insert(reply->trans_id);
    }
    EXPECT_EQ(controller->stats().commands, 6u);
}

// What top -H and perf show: an operator can tell a controller's I/O threads and the channel's worker apart.
TEST_F(StorvspTest, ThreadsCarryTheControllerAndChannelNames)
{
    open();
    auto names = [] {
        std::multiset<std::string> out;
        for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
            std::ifstream comm(entry.path() / "comm");
            std::string name;
            std::getline(comm, name);
            out.insert(name);
        }
        return out;
    };
    EXPECT_TRUE(vmbus::testing::wait_until([&] {
        auto n = names();
        return n.count("scsi0-io0") == 1 && n.count("scsi0-io1") == 1 && n.count("scsi0-io2") == 0 &&
            n.count(fmt::format("vmbus-ch{}", channel.relid)) == 1;
    })) << "threads: " << fmt::format("{}", fmt::join(names(), " "));
}

TEST(StorvspCreate, RefusesBadOptions)
{
    ControllerOptions options;
    options.io_threads = 0;
    EXPECT_FALSE(StorvspController::create(options));
    options.io_threads = 1;
    options.max_transfer_bytes = 100;
    EXPECT_FALSE(StorvspController::create(options));
    options.max_transfer_bytes = 1 << 20;
    options.max_in_flight = 0;
    EXPECT_FALSE(StorvspController::create(options));
}

} // namespace
} // namespace vmgen::vm::storvsp::testing

namespace vmgen::vm::storvsp::testing {
namespace {

class StorvspPollTest : public StorvscTest {
protected:
    static ControllerOptions polling()
    {
        auto options = default_options();
        options.poll_window = std::chrono::milliseconds(300);
        return options;
    }
    StorvspPollTest() : StorvscTest(polling())
    {
        EXPECT_TRUE(controller->attach(0, make_disk(std::make_unique<MemoryDisk>(1 << 20, 512), 0)));
    }
};

TEST_F(StorvspPollTest, TheNextCommandAfterACompletionNeedsNoSignal)
{
    open();
    init_like_linux();
    auto reply = execute(srb(test_unit_ready()));
    ASSERT_TRUE(reply);
    // The completion came with the guest -> host ring masked: the guest's next command does not signal.
    EXPECT_EQ(channel.outbound->control(protocols::vmbus::ring_offset_interrupt_mask), 1u);
    auto packet = srb_packet(srb(test_unit_ready()));
    bool signalled = true;
    ASSERT_TRUE(channel.outbound->write_packet(protocols::vmbus::packet_type_data_inband,
                                               protocols::vmbus::packet_flag_completion_requested, 99,
                                               std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet)),
                                               &signalled));
    EXPECT_FALSE(signalled);
    reply = receive();
    ASSERT_TRUE(reply) << "the polling worker did not pick up the unsignalled command";
    EXPECT_EQ(reply->trans_id, 99u);
    // After the window the worker unmasks and sleeps: signals are needed again.
    EXPECT_TRUE(vmbus::testing::wait_until(
        [&] { return channel.outbound->control(protocols::vmbus::ring_offset_interrupt_mask) == 0; }));
}

} // namespace
} // namespace vmgen::vm::storvsp::testing

namespace vmgen::vm::storvsp::testing {
namespace {

// A lone command (the guest waits for it, nothing else in flight) that the LUN can do without blocking is
// completed by the channel's worker itself; everything else goes through the I/O threads.
class StorvspWorkerTest : public StorvscTest {
protected:
    explicit StorvspWorkerTest(bool worker_executes = true) : StorvscTest(options_with(worker_executes))
    {
        backing = std::make_shared<MemoryDisk>(disk_bytes, 512);
        EXPECT_TRUE(controller->attach(0, make_disk(std::make_unique<SharedDisk>(backing), 0)));
    }
    static ControllerOptions options_with(bool worker_executes)
    {
        auto options = default_options();
        options.worker_executes = worker_executes;
        return options;
    }
    [[nodiscard]] uint64_t worker_commands() const { return controller->stats().worker_commands; }
    void expect_good(const std::optional<Completion>& reply, uint32_t bytes)
    {
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
        EXPECT_EQ(reply->srb().scsi_status, 0);
        EXPECT_EQ(reply->srb().data_transfer_length, bytes);
    }
    std::shared_ptr<MemoryDisk> backing;
};

TEST_F(StorvspWorkerTest, LoneReadsAndWritesCompleteOnTheWorker)
{
    open();
    init_like_linux();
    auto data = lba_pattern(8, 16, 3);
    write_guest(buffer_gpa, data);
    uint64_t before = worker_commands();
    expect_good(execute(srb(rw10(op::write_10, 8, 16), DataDirection::Out, 16 * 512)), 16 * 512);
    std::vector<uint8_t> on_disk(data.size());
    ASSERT_TRUE(backing->read(8 * 512, on_disk));
    EXPECT_EQ(on_disk, data);

    Srb read = srb(rw10(op::read_10, 8, 16), DataDirection::In, 16 * 512);
    read.gpa = buffer_gpa + (1 << 20) + 100;
    expect_good(execute(read), 16 * 512);
    EXPECT_EQ(read_guest(read.gpa, data.size()), data);
    EXPECT_EQ(worker_commands() - before, 2u);
    auto stats = controller->stats();
    EXPECT_EQ(stats.bytes_read, 16u * 512);
    EXPECT_EQ(stats.bytes_written, 16u * 512);
}

TEST_F(StorvspWorkerTest, FuaWritesAndFlushesGoToTheIoThreads)
{
    open();
    init_like_linux();
    write_guest(buffer_gpa, lba_pattern(0, 8, 1));
    uint64_t before = worker_commands();
    unsigned flushes = backing->flushes();
    expect_good(execute(srb(rw10(op::write_10, 0, 8, 0x08 /* FUA */), DataDirection::Out, 8 * 512)), 8 * 512);
    EXPECT_GT(backing->flushes(), flushes) << "FUA must reach stable storage before the completion";
    flushes = backing->flushes();
    expect_good(execute(srb({op::synchronize_cache_10, 0, 0, 0, 0, 0, 0, 0, 0, 0})), 0);
    EXPECT_GT(backing->flushes(), flushes);
    EXPECT_EQ(worker_commands(), before) << "a flush waits for the device: not on the worker";
}

TEST_F(StorvspWorkerTest, ACommandThatWouldBlockIsRedoneOnAnIoThread)
{
    open();
    init_like_linux();
    auto data = lba_pattern(100, 8, 5);
    std::memcpy(backing->bytes().data() + 100 * 512, data.data(), data.size());
    backing->set_would_block(true);
    uint64_t before = worker_commands();
    expect_good(execute(srb(rw10(op::read_10, 100, 8), DataDirection::In, 8 * 512)), 8 * 512);
    EXPECT_EQ(read_guest(buffer_gpa, data.size()), data);
    EXPECT_GE(backing->nowait_refusals(), 1u) << "the worker did not try first";
    EXPECT_EQ(worker_commands(), before);
}

TEST_F(StorvspWorkerTest, ABurstIsHandedToTheIoThreads)
{
    open();
    init_like_linux();
    uint64_t before = worker_commands();
    std::vector<Srb> reads;
    for (uint32_t i = 1; i <= 2; ++i) {
        reads.push_back(srb(rw10(op::read_10, i * 8, 8), DataDirection::In, 8 * 512));
        reads.back().gpa = buffer_gpa + i * 8192;
    }
    ASSERT_TRUE(send_burst(reads));
    std::set<uint64_t> seen;
    for (int i = 0; i < 2; ++i) {
        auto reply = receive();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
        seen.insert(reply->trans_id);
    }
    EXPECT_EQ(seen, (std::set<uint64_t> {1, 2}));
    EXPECT_EQ(worker_commands(), before) << "a burst of two is for the I/O threads";
}

TEST_F(StorvspWorkerTest, CommandsThatBlockOverlapOnTheIoThreads)
{
    // Short commands share one wake-up, but a thread about to block on the disk wakes another first: two reads
    // that wait for the storage wait side by side, not one after the other.
    GatedDisk* gate = attach_gated(*controller, 1);
    ASSERT_NE(gate, nullptr);
    open();
    init_like_linux();
    gate->close_gate();
    std::vector<Srb> reads;
    for (uint32_t i = 0; i < 2; ++i) {
        reads.push_back(srb(rw10(op::read_10, i * 8, 8), DataDirection::In, 8 * 512, 1));
        reads.back().gpa = buffer_gpa + i * 8192;
    }
    ASSERT_TRUE(send_burst(reads));
    EXPECT_TRUE(gate->wait_waiting(2)) << "the second read waited for the first instead of running beside it";
    gate->open_gate();
    for (int i = 0; i < 2; ++i) {
        auto reply = receive();
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->srb().srb_status, wire::srb_status_success);
    }
}

class StorvspNoWorkerTest : public StorvspWorkerTest {
protected:
    StorvspNoWorkerTest() : StorvspWorkerTest(false) {}
};

TEST_F(StorvspNoWorkerTest, EveryCommandGoesThroughAnIoThreadWhenTurnedOff)
{
    open();
    init_like_linux();
    expect_good(execute(srb(rw10(op::read_10, 0, 8), DataDirection::In, 8 * 512)), 8 * 512);
    EXPECT_EQ(worker_commands(), 0u);
}

} // namespace
} // namespace vmgen::vm::storvsp::testing
