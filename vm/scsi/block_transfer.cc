#include "vm/scsi/block_transfer.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace vmgen::vm::scsi {

namespace {

enum class Direction { ToBuffer, FromBuffer };

// One walk over the buffer window. `pos` is the transfer offset of the next byte; whole sectors that start at a
// sector boundary inside a segment move directly, the rest through `bounce` (one sector).
class Transfer {
public:
    Transfer(disk::BlockDevice& disk, uint64_t disk_offset, uint64_t length, Direction direction, Blocking blocking)
        : m_disk(disk)
        , m_disk_offset(disk_offset)
        , m_length(length)
        , m_sector(disk.sector_size())
        , m_direction(direction)
        , m_blocking(blocking)
    {
    }

    TransferResult run(DataBuffer& buffer, uint64_t buffer_offset)
    {
        TransferResult result;
        if (m_sector == 0 || m_length % m_sector != 0) {
            result.failure = TransferResult::Failure::Disk;
            result.error
                = Error::format("transfer of {} bytes is not a multiple of the {}-byte sector", m_length, m_sector);
            return result;
        }
        if (m_length == 0)
            return result;
        auto walked = buffer.for_each_segment(
            buffer_offset, m_length, [this](std::span<uint8_t> segment) { return segment_step(segment); });
        if (walked && m_pos != m_length)
            walked = fail("buffer walk returned {} of {} bytes", m_pos, m_length);
        if (!walked && m_would_block) {
            result.failure = TransferResult::Failure::WouldBlock;
            return result;
        }
        if (!walked) {
            result.failure = m_disk_error ? TransferResult::Failure::Disk : TransferResult::Failure::Buffer;
            result.done = m_disk_error ? m_failed_at : std::min(m_done, m_pos);
            result.error = m_disk_error ? std::move(m_disk_error) : std::optional<Error>(std::move(walked).error());
            return result;
        }
        result.done = m_length;
        return result;
    }

private:
    Result<void> segment_step(std::span<uint8_t> segment)
    {
        if (segment.size() > m_length - m_pos)
            return fail("buffer walk returned more than the {} bytes asked for", m_length);
        size_t i = 0;
        while (i < segment.size()) {
            const uint64_t pos = m_pos + i;
            const uint64_t in_sector = pos % m_sector;
            const size_t remaining = segment.size() - i;
            if (in_sector == 0 && remaining >= m_sector) {
                const size_t n = remaining - remaining % m_sector;
                TRY(disk_io(pos, segment.subspan(i, n)));
                i += n;
                m_done = pos + n;
                continue;
            }
            const uint64_t sector_start = pos - in_sector;
            const size_t n = static_cast<size_t>(std::min<uint64_t>(m_sector - in_sector, remaining));
            if (m_bounce.empty())
                m_bounce.resize(m_sector);
            if (m_direction == Direction::ToBuffer) {
                if (m_bounce_sector != sector_start) {
                    TRY(disk_io(sector_start, m_bounce));
                    m_bounce_sector = sector_start;
                }
                std::memcpy(segment.data() + i, m_bounce.data() + in_sector, n);
                m_done = pos + n;
            } else {
                std::memcpy(m_bounce.data() + in_sector, segment.data() + i, n);
                if (in_sector + n == m_sector) {
                    TRY(disk_io(sector_start, m_bounce));
                    m_done = sector_start + m_sector;
                }
            }
            i += n;
        }
        m_pos += segment.size();
        return {};
    }

    Result<void> disk_io(uint64_t pos, std::span<uint8_t> bytes)
    {
        if (m_blocking == Blocking::no) {
            auto done = m_direction == Direction::ToBuffer ? m_disk.read_nowait(m_disk_offset + pos, bytes)
                                                           : m_disk.write_nowait(m_disk_offset + pos, bytes);
            if (done && !*done) {
                m_would_block = true;
                return fail("the disk would block");
            }
            if (!done)
                return record(fail(std::move(done).error()), pos);
            return {};
        }
        return record(m_direction == Direction::ToBuffer ? m_disk.read(m_disk_offset + pos, bytes)
                                                         : m_disk.write(m_disk_offset + pos, bytes),
            pos);
    }

    Result<void> record(Result<void> done, uint64_t pos)
    {
        if (!done) {
            m_failed_at = pos;
            m_disk_error = std::move(done).error();
            return fail("disk I/O failed");
        }
        return {};
    }

    disk::BlockDevice& m_disk;
    const uint64_t m_disk_offset;
    const uint64_t m_length;
    const uint64_t m_sector;
    const Direction m_direction;
    const Blocking m_blocking;
    bool m_would_block = false;
    uint64_t m_pos = 0; // transfer offset of the current segment's first byte
    uint64_t m_done = 0; // bytes known complete (contiguous from 0)
    std::vector<uint8_t> m_bounce;
    uint64_t m_bounce_sector = UINT64_MAX;
    uint64_t m_failed_at = 0;
    std::optional<Error> m_disk_error;
};

} // namespace

TransferResult read_to_buffer(disk::BlockDevice& disk, uint64_t disk_offset, uint64_t length, DataBuffer& buffer,
    uint64_t buffer_offset, Blocking blocking)
{
    return Transfer(disk, disk_offset, length, Direction::ToBuffer, blocking).run(buffer, buffer_offset);
}

TransferResult write_from_buffer(disk::BlockDevice& disk, uint64_t disk_offset, uint64_t length, DataBuffer& buffer,
    uint64_t buffer_offset, Blocking blocking)
{
    return Transfer(disk, disk_offset, length, Direction::FromBuffer, blocking).run(buffer, buffer_offset);
}

} // namespace vmgen::vm::scsi
