// INQUIRY data and vital product data shared by the LUN types, and the target-level answers storvsp gives for
// LUNs it does not have (INQUIRY with peripheral qualifier 011b) and for REPORT LUNS across its LUNs.
#pragma once

#include "vm/scsi/scsi_lun.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vmgen::vm::scsi {

// Who a LUN says it is. The vendor string matters to Linux: storvsc enables WRITE SAME and, with older hosts,
// SPC-3 behaviour only for vendor "Msft" (storvsc_device_configure), which is what Hyper-V's disks report.
struct LunIdentity {
    std::string vendor = "Msft"; // T10 vendor identification, at most 8 ASCII characters
    std::string product; // at most 16; empty: the LUN type's default
    std::string revision = "1.0"; // at most 4
    std::array<uint8_t, 16> id {}; // stable per-disk identifier (VPD 0x83 designators)
    std::string serial; // VPD 0x80; empty: the id in hexadecimal (32 characters)
};

// The identity with its strings cut to their field sizes and non-printable characters replaced, and the serial
// filled in: what the LUN constructors store.
LunIdentity normalized_identity(LunIdentity identity);

// Standard INQUIRY data (74 bytes: with version descriptors).
std::vector<uint8_t> standard_inquiry(
    uint8_t peripheral, bool removable, const LunIdentity& identity, std::span<const uint16_t> version_descriptors);
// VPD pages 0x00 (the list), 0x80 (unit serial number) and 0x83 (device identification: an NAA locally assigned
// designator made from the id, and a T10 vendor ID designator "<vendor><id hex>").
std::vector<uint8_t> vpd_supported_pages(uint8_t peripheral, std::span<const uint8_t> pages);
std::vector<uint8_t> vpd_unit_serial_number(uint8_t peripheral, const LunIdentity& identity);
std::vector<uint8_t> vpd_device_identification(uint8_t peripheral, const LunIdentity& identity);

class ScsiRequest;

// What a LUN type says about itself in INQUIRY.
struct InquiryProfile {
    uint8_t peripheral = 0;
    bool removable = false;
    std::span<const uint16_t> version_descriptors;
    std::span<const uint8_t> vpd_pages; // every page it answers, in ascending order (0x00, 0x80, 0x83 included)
};
// The device's own VPD pages beyond 0x00/0x80/0x83; nullopt for a page it does not have.
using DeviceVpdPage = std::function<std::optional<std::vector<uint8_t>>(uint8_t page)>;
// Answers an INQUIRY CDB: CMDDT refused, the standard data, VPD 0x00/0x80/0x83, then `device_page` for the rest;
// an unknown page is INVALID FIELD IN CDB.
ScsiOutcome answer_inquiry(
    ScsiRequest& request, const InquiryProfile& profile, const LunIdentity& identity, const DeviceVpdPage& device_page);

// The LUN address of `lun` in SAM-5 single level format: peripheral device addressing below 256, flat space
// addressing up to 16383.
std::array<uint8_t, 8> encode_lun(uint16_t lun);

// REPORT LUNS for a target with these LUNs (each below 16384), the way storvsp should answer it for the whole
// target: the LUNs themselves only report their own number.
ScsiOutcome report_luns(const ScsiCommand& command, DataBuffer& data, std::span<const uint16_t> luns);
// INQUIRY for a LUN with no device behind it: peripheral qualifier 011b / type 0x1f (byte 0 = 0x7f), which Linux
// skips; any other command to such a LUN should fail at the HBA level (storvsc: SRB_STATUS_INVALID_LUN).
ScsiOutcome inquiry_for_absent_lun(const ScsiCommand& command, DataBuffer& data);

} // namespace vmgen::vm::scsi
