// MODE SENSE(6) / MODE SENSE(10) shared by the LUN types: the CDB checks (page control, page and subpage codes,
// DBD, LLBAA), the mode parameter header, the optional block descriptor, and the pages the LUN provides.
// Internal to vm/scsi.
#pragma once

#include "vm/scsi/scsi_request.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::scsi {

struct ModeSenseSource {
    uint8_t medium_type = 0;
    uint8_t device_specific = 0; // direct access: WP, DPOFUA
    bool block_descriptor = false; // direct access devices describe their blocks unless DBD
    uint64_t block_count = 0;
    uint32_t block_length = 0;
    std::span<const uint8_t> pages; // the supported page codes, ascending (what page 0x3f returns)
    // Appends page `code` (one of `pages`) with the values `control` asks for (never Saved).
    std::function<void(uint8_t code, protocols::scsi::PageControl control, std::vector<uint8_t>& out)> append_page;
};

// Answers MODE SENSE(6) or (10) (the request's opcode says which; its CDB size has been checked).
ScsiOutcome mode_sense(ScsiRequest& request, const ModeSenseSource& source);

} // namespace vmgen::vm::scsi
