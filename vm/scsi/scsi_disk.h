// ScsiDisk: a SCSI direct-access logical unit (SBC-3) over a vm::disk::BlockDevice (raw, VHD, VHDX).
//
// Commands: TEST UNIT READY, REQUEST SENSE, INQUIRY (standard; VPD 00, 80, 83, B0, B1, B2), REPORT LUNS (this LUN
// only: storvsp answers it for the whole target with report_luns()), READ CAPACITY(10)/(16), MODE SENSE(6)/(10)
// (caching 08h, control 0Ah, all 3Fh), MODE SELECT(6)/(10) (the caching page's WCE and RCD bits), READ/WRITE
// (6/10/12/16) with FUA, VERIFY(10)/(16), SYNCHRONIZE CACHE(10)/(16), UNMAP, WRITE SAME(10)/(16) (with UNMAP and
// NDOB), START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL. Everything else: ILLEGAL REQUEST / INVALID COMMAND
// OPERATION CODE. The sense codes are listed in docs/scsi.md.
//
// The logical block size is the BlockDevice's logical sector size (512 or 4096); the physical block exponent of
// READ CAPACITY(16) comes from its physical sector size. Discard (UNMAP, WRITE SAME with UNMAP, LBPME/LBPRZ) is
// advertised when the disk is writable and the options allow it. With the write cache disabled (MODE SELECT
// WCE = 0) every write is followed by a flush, like FUA.
//
// Thread safety: execute() may run concurrently on several threads (the BlockDevice is thread-safe; the LUN's
// own state is atomic).
#pragma once

#include "vm/disk/block_device.h"
#include "vm/scsi/block_transfer.h"
#include "vm/scsi/inquiry.h"
#include "vm/scsi/scsi_lun.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace vmgen::vm::scsi {

class ScsiRequest;

struct ScsiDiskOptions {
    LunIdentity identity; // an empty product is "Virtual Disk"
    bool read_only = false; // also read-only whenever the BlockDevice is
    bool discard = true; // advertise and honour UNMAP (needs a writable disk)
    uint32_t max_transfer_bytes = 8u << 20; // Block Limits MAXIMUM TRANSFER LENGTH (a larger READ/WRITE is refused)
    uint64_t max_unmap_bytes = 4ull << 30; // per UNMAP / WRITE SAME command
    uint32_t max_unmap_descriptors = 256; // per UNMAP parameter list
    uint16_t lun = 0; // what REPORT LUNS sent to this LUN reports
};

class ScsiDisk final : public ScsiLun {
public:
    // Errors: a logical sector size other than 512 or 4096, an empty disk or one that is not a whole number of
    // sectors, a max_transfer_bytes below one block.
    static Result<std::unique_ptr<ScsiDisk>> create(std::unique_ptr<disk::BlockDevice> disk, ScsiDiskOptions options);

    ScsiOutcome execute(const ScsiCommand& command, DataBuffer& data) override;
    // READ and WRITE (6/10/12/16) the disk can do without blocking (BlockDevice::read_nowait/write_nowait): no
    // FUA, write cache on, no unit attention pending. Everything else answers nullopt.
    std::optional<ScsiOutcome> execute_nowait(const ScsiCommand& command, DataBuffer& data) override;
    [[nodiscard]] uint8_t peripheral_type() const override { return protocols::scsi::peripheral_type_disk; }

    [[nodiscard]] disk::BlockDevice& disk() { return *m_disk; }
    [[nodiscard]] bool read_only() const { return m_read_only; }
    [[nodiscard]] bool write_cache_enabled() const { return m_write_cache.load(); }
    [[nodiscard]] uint32_t block_size() const { return m_block_size; }
    // The disk changed size under the guest: the next command (other than INQUIRY, REPORT LUNS, REQUEST SENSE)
    // answers UNIT ATTENTION / CAPACITY DATA HAS CHANGED once.
    void notify_capacity_changed() { m_capacity_changed.store(true); }

private:
    ScsiDisk(std::unique_ptr<disk::BlockDevice> disk, ScsiDiskOptions options);

    [[nodiscard]] uint64_t block_count() const { return m_disk->size() / m_block_size; }
    [[nodiscard]] bool range_ok(uint64_t lba, uint64_t count) const;
    ScsiOutcome dispatch(ScsiRequest& request);

    // scsi_disk.cc: data commands.
    ScsiOutcome read_write(ScsiRequest& request, bool write);
    // nullopt only with Blocking::no (the disk would block).
    std::optional<ScsiOutcome> transfer(ScsiRequest& request, bool write, uint64_t lba, uint64_t count, bool fua,
        uint16_t length_field, Blocking blocking);
    ScsiOutcome verify(ScsiRequest& request);
    ScsiOutcome synchronize_cache(ScsiRequest& request);
    ScsiOutcome unmap(ScsiRequest& request);
    ScsiOutcome write_same(ScsiRequest& request);
    ScsiOutcome start_stop_unit(ScsiRequest& request);
    ScsiOutcome flush_if_write_through(uint64_t lba);

    // scsi_disk_pages.cc: inquiry, capacity and mode data.
    ScsiOutcome inquiry(ScsiRequest& request);
    ScsiOutcome request_sense(ScsiRequest& request);
    ScsiOutcome read_capacity_10(ScsiRequest& request);
    ScsiOutcome read_capacity_16(ScsiRequest& request);
    ScsiOutcome mode_sense(ScsiRequest& request);
    ScsiOutcome mode_select(ScsiRequest& request);
    std::vector<uint8_t> vpd_block_limits() const;
    std::vector<uint8_t> vpd_block_characteristics() const;
    std::vector<uint8_t> vpd_provisioning() const;

    std::unique_ptr<disk::BlockDevice> m_disk;
    ScsiDiskOptions m_options;
    uint32_t m_block_size = 512;
    uint8_t m_physical_exponent = 0; // logical blocks per physical block, log2
    bool m_read_only = false;
    bool m_discard = false;
    uint32_t m_max_transfer_blocks = 0;
    uint32_t m_max_unmap_blocks = 0;
    std::atomic<bool> m_write_cache { true };
    std::atomic<bool> m_read_cache_disabled { false };
    std::atomic<bool> m_capacity_changed { false };
};

} // namespace vmgen::vm::scsi
