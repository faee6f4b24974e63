#include "vm/scsi/scsi_lun.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;

ScsiCommand ScsiCommand::make(std::span<const uint8_t> bytes, DataDirection direction, uint32_t transfer_length)
{
    ScsiCommand command;
    command.direction = direction;
    command.transfer_length = transfer_length;
    if (bytes.size() <= command.cdb.size()) {
        std::copy(bytes.begin(), bytes.end(), command.cdb.begin());
        command.cdb_length = static_cast<uint8_t>(bytes.size());
    }
    return command;
}

uint32_t SenseData::information() const
{
    wire::FixedSense sense {};
    std::memcpy(&sense, bytes.data(), sizeof(sense));
    return sense.information.get();
}

SenseData SenseData::make(uint8_t key, wire::AdditionalSense additional)
{
    wire::FixedSense sense {};
    sense.response_code = wire::sense_response_fixed_current;
    sense.flags_key = key & 0x0f;
    sense.additional_length = sizeof(wire::FixedSense) - offsetof(wire::FixedSense, command_specific);
    sense.asc = additional.asc;
    sense.ascq = additional.ascq;
    SenseData data;
    std::memcpy(data.bytes.data(), &sense, sizeof(sense));
    return data;
}

SenseData SenseData::none()
{
    return make(wire::sense_key::no_sense, wire::asc::no_additional_sense);
}

ScsiOutcome ScsiOutcome::good_with(uint64_t transferred)
{
    ScsiOutcome outcome;
    outcome.transferred = transferred;
    return outcome;
}

ScsiOutcome ScsiOutcome::check_condition(uint8_t key, wire::AdditionalSense additional)
{
    ScsiOutcome outcome;
    outcome.status = ScsiStatus::CheckCondition;
    outcome.sense = SenseData::make(key, additional);
    return outcome;
}

// Both copies check the walk against the window: a DataBuffer that hands out more or fewer bytes than asked for
// is an error, never an overrun of the host-side span.
Result<void> DataBuffer::copy_in(uint64_t offset, std::span<const uint8_t> in)
{
    size_t done = 0;
    TRY(for_each_segment(offset, in.size(), [&](std::span<uint8_t> segment) -> Result<void> {
        if (segment.size() > in.size() - done)
            return fail("buffer walk returned {} bytes more than asked for", segment.size() - (in.size() - done));
        std::memcpy(segment.data(), in.data() + done, segment.size());
        done += segment.size();
        return {};
    }));
    if (done != in.size())
        return fail("buffer walk returned {} of {} bytes", done, in.size());
    return {};
}

Result<void> DataBuffer::copy_out(uint64_t offset, std::span<uint8_t> out)
{
    size_t done = 0;
    TRY(for_each_segment(offset, out.size(), [&](std::span<uint8_t> segment) -> Result<void> {
        if (segment.size() > out.size() - done)
            return fail("buffer walk returned {} bytes more than asked for", segment.size() - (out.size() - done));
        std::memcpy(out.data() + done, segment.data(), segment.size());
        done += segment.size();
        return {};
    }));
    if (done != out.size())
        return fail("buffer walk returned {} of {} bytes", done, out.size());
    return {};
}

SpanDataBuffer::SpanDataBuffer(std::span<uint8_t> single)
{
    if (!single.empty())
        m_segments.push_back(single);
    m_size = single.size();
}

SpanDataBuffer::SpanDataBuffer(std::vector<std::span<uint8_t>> segments)
{
    for (const auto& segment : segments) {
        if (segment.empty())
            continue;
        m_segments.push_back(segment);
        m_size += segment.size();
    }
}

Result<void> SpanDataBuffer::for_each_segment(uint64_t offset, uint64_t length, const SegmentFn& fn)
{
    if (offset > m_size || length > m_size - offset)
        return fail("buffer window [{}, +{}) is outside the {}-byte buffer", offset, length, m_size);
    uint64_t start = 0; // transfer offset of the current segment
    for (const auto& segment : m_segments) {
        if (length == 0)
            break;
        const uint64_t end = start + segment.size();
        if (offset < end) {
            const uint64_t skip = offset - start;
            const uint64_t take = std::min<uint64_t>(segment.size() - skip, length);
            TRY(fn(segment.subspan(static_cast<size_t>(skip), static_cast<size_t>(take))));
            offset += take;
            length -= take;
        }
        start = end;
    }
    return {};
}

} // namespace vmgen::vm::scsi
