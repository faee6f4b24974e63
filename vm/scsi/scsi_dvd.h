// ScsiDvd: a read-only CD/DVD-ROM logical unit (MMC-6 subset) over an ISO image opened as a raw BlockDevice,
// with removable media: the host inserts, changes or removes the medium at any time (change_media), the guest
// may lock it (PREVENT ALLOW MEDIUM REMOVAL) and eject it (START STOP UNIT with LoEj).
//
// Commands: TEST UNIT READY, REQUEST SENSE, INQUIRY (type 5, removable; VPD 00, 80, 83), REPORT LUNS (this LUN
// only), READ CAPACITY(10), READ(10)/(12) (2048-byte blocks), MODE SENSE(6)/(10) (page 2Ah and 3Fh), MODE SELECT
// (header and block descriptors only), GET CONFIGURATION, GET EVENT STATUS NOTIFICATION (polled, media class),
// READ TOC/PMA/ATIP (formats 0 and 1, LBA and MSF), READ DISC INFORMATION, READ TRACK INFORMATION, READ DVD
// STRUCTURE (formats 00h, 01h, FFh), GET PERFORMANCE (type 0), SET CD SPEED, PREVENT ALLOW MEDIUM REMOVAL,
// START STOP UNIT. Everything else (writes included): ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
//
// The medium is a single-session disc with one data track: a CD-ROM when it holds at most 80 minutes of blocks,
// otherwise a DVD-ROM (GET CONFIGURATION's current profile). After a new medium is inserted, the next command
// other than INQUIRY, REPORT LUNS, REQUEST SENSE, GET CONFIGURATION and GET EVENT STATUS NOTIFICATION answers
// UNIT ATTENTION / NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (28h/00h) once; without a medium the
// medium-access commands answer NOT READY / MEDIUM NOT PRESENT (3Ah/00h). GET EVENT STATUS NOTIFICATION reports
// each change once (new media, media removal, eject request).
//
// Thread safety: every public function may be called from any thread; a read keeps the medium it started on
// alive even if the host changes it meanwhile.
#pragma once

#include "vm/disk/block_device.h"
#include "vm/scsi/inquiry.h"
#include "vm/scsi/scsi_lun.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace vmgen::vm::scsi {

class ScsiRequest;

struct ScsiDvdOptions {
    LunIdentity identity; // an empty product is "Virtual DVD-ROM"
    uint16_t lun = 0; // what REPORT LUNS sent to this LUN reports
    // Called after the guest ejected the medium (START STOP UNIT with LoEj), on the guest's I/O thread and
    // without the LUN's lock held, so the VMM can record that the drive is now empty.
    std::function<void()> on_guest_eject;
};

class ScsiDvd final : public ScsiLun {
public:
    explicit ScsiDvd(ScsiDvdOptions options);

    ScsiOutcome execute(const ScsiCommand& command, DataBuffer& data) override;
    [[nodiscard]] uint8_t peripheral_type() const override { return protocols::scsi::peripheral_type_cd_dvd; }
    // Allows medium removal again (a reset ends PREVENT ALLOW MEDIUM REMOVAL's prevention).
    void reset() override;

    // Host side. Inserts `media` (replacing any medium; nullptr removes it), whatever the guest's lock says: the
    // host owns the drive. Errors (nothing changes): the medium's logical sector size does not divide 2048, it
    // holds no whole 2048-byte block, or more than 2^32 - 1 of them.
    Result<void> change_media(std::unique_ptr<disk::BlockDevice> media);
    // The drive's eject button: removes the medium unless the guest prevents removal, in which case the guest is
    // told of the request (GET EVENT STATUS NOTIFICATION: eject request) and may eject it itself. Returns whether
    // the drive is empty now.
    bool request_eject();
    [[nodiscard]] bool has_media() const;
    [[nodiscard]] bool removal_prevented() const;

private:
    struct Snapshot {
        std::shared_ptr<disk::BlockDevice> media;
        uint32_t blocks = 0; // 2048-byte blocks
    };

    ScsiOutcome dispatch(ScsiRequest& request, const Snapshot& snapshot);
    // scsi_dvd.cc
    ScsiOutcome inquiry(ScsiRequest& request);
    ScsiOutcome request_sense(ScsiRequest& request);
    ScsiOutcome read_capacity(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome read(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome mode_sense(ScsiRequest& request);
    ScsiOutcome mode_select(ScsiRequest& request);
    ScsiOutcome prevent_allow(ScsiRequest& request);
    ScsiOutcome start_stop_unit(ScsiRequest& request);
    // scsi_dvd_mmc.cc
    ScsiOutcome get_configuration(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome get_event_status(ScsiRequest& request);
    ScsiOutcome read_toc(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome read_disc_information(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome read_track_information(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome read_dvd_structure(ScsiRequest& request, const Snapshot& snapshot);
    ScsiOutcome get_performance(ScsiRequest& request, const Snapshot& snapshot);

    // Removes the medium and queues the removal event; the caller holds m_mutex.
    void remove_media_locked();

    ScsiDvdOptions m_options;

    mutable std::mutex m_mutex;
    Snapshot m_current; // guarded by m_mutex
    bool m_unit_attention = false; // guarded: a new medium not yet reported
    uint8_t m_pending_event = 0; // guarded: media event code for GET EVENT STATUS NOTIFICATION
    bool m_prevent_removal = false; // guarded
};

} // namespace vmgen::vm::scsi
