// A one-line progress bar for long disk commands (convert-vhd, merge-vhd, test-vhd), redrawn in place with '\r'
// on a terminal at most every 100 ms:
//   Converting [##############----------------]  47%  1.9 GiB / 4.0 GiB
// Disabled (no output at all) when the stream is not a terminal, so scripts and logs stay clean.
#pragma once

#include "vm/disk/disk_ops.h"

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace vmgen::mgmt {

class ProgressBar {
public:
    ProgressBar(std::ostream& out, bool enabled, std::string label);
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // Records progress; redraws when enabled and at least 100 ms passed since the last drawing (or at the end).
    void update(uint64_t done, uint64_t total);
    // A callback for the disk operations that forwards to update().
    vm::disk::ProgressFn callback();
    // Ends the line (once) if anything was drawn.
    void finish();

    // The text of one drawing (no '\r'), for tests.
    static std::string render(std::string_view label, uint64_t done, uint64_t total);

private:
    std::ostream& m_out;
    bool m_enabled;
    std::string m_label;
    bool m_drawn = false;
    bool m_finished = false;
    std::chrono::steady_clock::time_point m_last{};
};

// "512 B", "1.5 KiB", "2.0 GiB" (binary units, one decimal from KiB on).
std::string human_bytes(uint64_t bytes);

} // namespace vmgen::mgmt
