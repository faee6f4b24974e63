// MemoryDisk: a BlockDevice held in memory, with failure injection, for the SCSI tests and the SCSI fuzzer.
// Header-only and not part of the library.
#pragma once

#include "vm/disk/block_device.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

namespace vmgen::vm::scsi {

class MemoryDisk final : public disk::BlockDevice {
public:
    MemoryDisk(uint64_t size, uint32_t logical_sector, uint32_t physical_sector = 0, bool read_only = false)
        : m_bytes(size)
        , m_read_only(read_only)
    {
        m_info.virtual_size = size;
        m_info.file_size = size;
        m_info.logical_sector_size = logical_sector;
        m_info.physical_sector_size = physical_sector == 0 ? logical_sector : physical_sector;
    }

    [[nodiscard]] const disk::DiskInfo& info() const override { return m_info; }
    [[nodiscard]] bool read_only() const override { return m_read_only; }

    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        std::lock_guard lock(m_mutex);
        TRY(check(offset, out.size()));
        if (hits(m_fail_reads_at, offset, out.size()))
            return fail("injected read failure at byte {}", m_fail_reads_at);
        std::memcpy(out.data(), m_bytes.data() + offset, out.size());
        ++m_reads;
        return {};
    }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override
    {
        std::lock_guard lock(m_mutex);
        if (m_read_only)
            return fail("read-only");
        TRY(check(offset, in.size()));
        if (hits(m_fail_writes_at, offset, in.size()))
            return fail("injected write failure at byte {}", m_fail_writes_at);
        std::memcpy(m_bytes.data() + offset, in.data(), in.size());
        ++m_writes;
        return {};
    }
    // Memory never blocks: the nowait paths do the I/O, unless set_would_block() makes them answer "would block".
    Result<bool> read_nowait(uint64_t offset, std::span<uint8_t> out) override
    {
        if (nowait_refused())
            return false;
        TRY(read(offset, out));
        return true;
    }
    Result<bool> write_nowait(uint64_t offset, std::span<const uint8_t> in) override
    {
        if (nowait_refused())
            return false;
        TRY(write(offset, in));
        return true;
    }
    Result<void> flush() override
    {
        std::lock_guard lock(m_mutex);
        if (m_fail_flush)
            return fail("injected flush failure");
        ++m_flushes;
        return {};
    }
    Result<void> discard(uint64_t offset, uint64_t length) override
    {
        std::lock_guard lock(m_mutex);
        if (m_read_only)
            return fail("read-only");
        TRY(check(offset, length));
        std::fill_n(m_bytes.begin() + static_cast<std::ptrdiff_t>(offset), length, uint8_t { 0 });
        m_discards.push_back({ offset, length });
        return {};
    }

    // Test access (not locked against concurrent I/O).
    std::vector<uint8_t>& bytes() { return m_bytes; }
    void fail_reads_at(uint64_t offset) { m_fail_reads_at = offset; }
    void fail_writes_at(uint64_t offset) { m_fail_writes_at = offset; }
    void fail_flush(bool fail) { m_fail_flush = fail; }
    void set_size(uint64_t size)
    {
        m_bytes.resize(size);
        m_info.virtual_size = size;
    }
    void set_would_block(bool would_block) { m_would_block = would_block; }
    [[nodiscard]] unsigned nowait_refusals() const { return m_nowait_refusals; }
    [[nodiscard]] unsigned flushes() const { return m_flushes; }
    [[nodiscard]] unsigned reads() const { return m_reads; }
    [[nodiscard]] unsigned writes() const { return m_writes; }
    [[nodiscard]] const std::vector<std::pair<uint64_t, uint64_t>>& discards() const { return m_discards; }

private:
    Result<void> check(uint64_t offset, uint64_t length) const
    {
        const uint32_t sector = m_info.logical_sector_size;
        if (offset % sector != 0 || length % sector != 0)
            return fail("unaligned request at {} length {}", offset, length);
        if (offset > m_bytes.size() || length > m_bytes.size() - offset)
            return fail("request at {} length {} past the end", offset, length);
        return {};
    }
    bool nowait_refused()
    {
        std::lock_guard lock(m_mutex);
        if (m_would_block)
            ++m_nowait_refusals;
        return m_would_block;
    }
    static bool hits(uint64_t at, uint64_t offset, uint64_t length) { return at >= offset && at - offset < length; }

    std::mutex m_mutex;
    disk::DiskInfo m_info;
    std::vector<uint8_t> m_bytes;
    bool m_read_only = false;
    uint64_t m_fail_reads_at = UINT64_MAX;
    uint64_t m_fail_writes_at = UINT64_MAX;
    bool m_fail_flush = false;
    bool m_would_block = false;
    unsigned m_nowait_refusals = 0;
    unsigned m_flushes = 0;
    unsigned m_reads = 0;
    unsigned m_writes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> m_discards;
};

} // namespace vmgen::vm::scsi
