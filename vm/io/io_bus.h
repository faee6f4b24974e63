// IoBus: dispatches an access to the handler whose range contains it (O(log n) range map).
// One bus for port I/O, one for MMIO. Unclaimed reads return all ones and unclaimed writes are ignored,
// as on real hardware with nothing decoding the address.
#pragma once

#include "support/result.h"
#include "vm/io/io_handler.h"

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

namespace vmgen::vm {

class IoBus {
public:
    explicit IoBus(std::string name) : m_name(std::move(name)) {}

    // Claims [base, base+length) for `handler`; fails if any part is already claimed.
    Result<void> add(uint64_t base, uint64_t length, std::shared_ptr<IoHandler> handler);
    // Releases the range that starts at `base`.
    Result<void> remove(uint64_t base);

    // Returns true if a handler claimed the access. An access that starts in a range but runs past its
    // end is still given to that handler (devices see their own register widths).
    bool read(uint64_t address, std::span<uint8_t> data) const;
    bool write(uint64_t address, std::span<const uint8_t> data) const;

    [[nodiscard]] bool is_claimed(uint64_t address) const;

    struct Range {
        uint64_t base;
        uint64_t length;
        std::string handler_name;
    };
    [[nodiscard]] std::vector<Range> ranges() const;

private:
    struct Entry {
        uint64_t length;
        std::shared_ptr<IoHandler> handler;
    };
    // Finds the entry containing `address`; caller holds m_lock.
    [[nodiscard]] const std::pair<const uint64_t, Entry>* find(uint64_t address) const;

    std::string m_name;
    mutable std::shared_mutex m_lock;
    std::map<uint64_t, Entry> m_entries;
};

} // namespace vmgen::vm
