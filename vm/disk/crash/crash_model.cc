#include "vm/disk/crash/crash_model.h"

#include <fmt/format.h>

#include <algorithm>

namespace vmgen::vm::disk::crash {

namespace {

// Durable value of a unit that held garbage when last checked (the check already reported it).
constexpr uint64_t garbage_value = ~uint64_t { 0 };
constexpr uint64_t read_chunk = 4 << 20;

const char* kind_name(RecordKind kind)
{
    switch (kind) {
    case RecordKind::Ready:
        return "ready";
    case RecordKind::Write:
        return "write";
    case RecordKind::Discard:
        return "discard";
    case RecordKind::Flushed:
        return "flushed";
    case RecordKind::Closed:
        return "closed";
    }
    return "unknown";
}

} // namespace

CrashModel::CrashModel(uint64_t disk_size)
    : m_disk_size(disk_size)
    , m_durable(disk_size / unit_size, 0)
    , m_durable_at(disk_size / unit_size, 0)
{
}

Result<void> CrashModel::apply(const Record& r)
{
    switch (r.kind) {
    case RecordKind::Ready:
        if (r.seq < m_next_seq)
            return fail("writer starts at sequence number {}, but {} is already used", r.seq, m_next_seq - 1);
        m_next_seq = r.seq;
        m_writer_first = r.seq;
        return {};
    case RecordKind::Write:
    case RecordKind::Discard: {
        if (r.seq < m_next_seq)
            return fail("{} #{} after #{}", kind_name(r.kind), r.seq, m_next_seq - 1);
        if (r.length == 0 || r.offset % unit_size != 0 || r.length % unit_size != 0 || r.offset > m_disk_size
            || r.length > m_disk_size - r.offset)
            return fail("{} #{} at {:#x} length {:#x} is not whole units inside the disk ({} bytes)", kind_name(r.kind),
                r.seq, r.offset, r.length, m_disk_size);
        const Op op { r.kind == RecordKind::Discard, r.offset / unit_size, (r.offset + r.length) / unit_size };
        m_pending.emplace(r.seq, op);
        m_ops.emplace(r.seq, op);
        m_next_seq = r.seq + 1;
        return {};
    }
    case RecordKind::Flushed:
        if (r.seq >= m_next_seq || r.seq + 1 < m_writer_first)
            return fail(
                "flush acknowledges #{} (this writer's operations: #{} to #{})", r.seq, m_writer_first, m_next_seq - 1);
        acknowledge(r.seq);
        return {};
    case RecordKind::Closed:
        acknowledge(m_next_seq - 1);
        return {};
    }
    return fail("unknown record kind {}", static_cast<uint32_t>(r.kind));
}

// Makes the current writer's operations up to `last` durable, in order.
void CrashModel::acknowledge(uint64_t last)
{
    if (last < m_writer_first)
        return;
    auto begin = m_pending.lower_bound(m_writer_first);
    auto end = m_pending.upper_bound(last);
    for (auto it = begin; it != end; ++it) {
        const Op& op = it->second;
        const auto first = static_cast<ptrdiff_t>(op.first_unit);
        const auto stop = static_cast<ptrdiff_t>(op.end_unit);
        std::fill(m_durable.begin() + first, m_durable.begin() + stop, op.discard ? 0 : it->first);
        std::fill(m_durable_at.begin() + first, m_durable_at.begin() + stop, it->first);
    }
    m_pending.erase(begin, end);
    m_acknowledged = std::max(m_acknowledged, last);
}

bool CrashModel::allowed(uint64_t unit, const UnitContent& content) const
{
    if (content.kind == UnitKind::Garbage)
        return false;
    const uint64_t value = content.kind == UnitKind::Zero ? 0 : content.seq;
    if (value == m_durable[unit])
        return true;
    // A pending operation that covers the unit and came after the durable value.
    auto covers = [&](uint64_t seq, const Op& op) {
        return seq > m_durable_at[unit] && op.first_unit <= unit && unit < op.end_unit;
    };
    if (content.kind == UnitKind::Stamped) {
        auto it = m_pending.find(content.seq);
        return it != m_pending.end() && !it->second.discard && covers(it->first, it->second);
    }
    return std::any_of(m_pending.upper_bound(m_durable_at[unit]), m_pending.end(),
        [&](const auto& entry) { return entry.second.discard && covers(entry.first, entry.second); });
}

std::string CrashModel::describe_value(uint64_t seq) const
{
    if (seq == 0)
        return "zeroes";
    if (seq == garbage_value)
        return "garbage";
    auto it = m_ops.find(seq);
    if (it == m_ops.end())
        return fmt::format("write #{} (checked before)", seq);
    return fmt::format("{} #{} (offset {:#x} length {:#x})", it->second.discard ? "discard" : "write", seq,
        it->second.first_unit * unit_size, (it->second.end_unit - it->second.first_unit) * unit_size);
}

std::string CrashModel::describe(uint64_t unit, const UnitContent& content) const
{
    std::string holds;
    switch (content.kind) {
    case UnitKind::Zero:
        holds = "zeroes";
        break;
    case UnitKind::Stamped:
        holds = describe_value(content.seq);
        break;
    case UnitKind::Garbage:
        holds = content.has_magic ? fmt::format("garbage (a stamp of unit {} from write #{}, {})", content.claimed_unit,
                    content.seq, content.claimed_unit == unit ? "bad checksum" : "misplaced")
                                  : "garbage (no stamp)";
        break;
    }
    std::string pending;
    for (const auto& [seq, op] : m_pending)
        if (op.first_unit <= unit && unit < op.end_unit)
            pending += fmt::format("{}{} #{}", pending.empty() ? "" : ", ", op.discard ? "discard" : "write", seq);
    std::string durable = describe_value(m_durable[unit]);
    if (m_durable[unit] == 0 && m_durable_at[unit] != 0)
        durable += fmt::format(" (discard #{})", m_durable_at[unit]);
    return fmt::format("unit {} (offset {:#x}) holds {}; the last acknowledged operation left {}; pending on it: {}",
        unit, unit * unit_size, holds, durable, pending.empty() ? "none" : pending);
}

Result<std::vector<UnitContent>> CrashModel::read_units(BlockDevice& disk) const
{
    if (disk.size() != m_disk_size)
        return fail("the disk has {} bytes, the model {}", disk.size(), m_disk_size);
    std::vector<UnitContent> contents(m_durable.size());
    std::vector<uint8_t> buffer(static_cast<size_t>(std::min(read_chunk, m_disk_size)));
    for (uint64_t offset = 0; offset < m_disk_size; offset += read_chunk) {
        const auto length = static_cast<size_t>(std::min(read_chunk, m_disk_size - offset));
        TRY_CTX(
            disk.read(offset, std::span<uint8_t>(buffer.data(), length)), "reading {:#x} length {:#x}", offset, length);
        for (size_t at = 0; at < length; at += unit_size) {
            const uint64_t unit = (offset + at) / unit_size;
            contents[unit] = decode_unit(std::span<const uint8_t>(buffer.data() + at, unit_size), unit);
        }
    }
    return contents;
}

// What was read is now the durable state, as of the last operation reported.
void CrashModel::settle()
{
    std::fill(m_durable_at.begin(), m_durable_at.end(), m_next_seq - 1);
    m_pending.clear();
    m_ops.clear();
    m_acknowledged = m_next_seq - 1;
    m_writer_first = m_next_seq;
}

Result<std::vector<std::string>> CrashModel::check(BlockDevice& disk, size_t max_problems)
{
    const auto contents = TRY(read_units(disk));
    std::vector<std::string> problems;
    uint64_t more = 0;
    for (uint64_t unit = 0; unit < contents.size(); ++unit) {
        const UnitContent& c = contents[unit];
        if (allowed(unit, c))
            continue;
        if (problems.size() < max_problems)
            problems.push_back(describe(unit, c));
        else
            ++more;
    }
    if (more != 0)
        problems.push_back(fmt::format("... and {} more units", more));
    for (uint64_t unit = 0; unit < contents.size(); ++unit) {
        const UnitContent& c = contents[unit];
        m_durable[unit] = c.kind == UnitKind::Zero ? 0 : c.kind == UnitKind::Stamped ? c.seq : garbage_value;
    }
    settle();
    return problems;
}

Result<void> CrashModel::observe(BlockDevice& disk)
{
    const auto contents = TRY(read_units(disk));
    for (uint64_t unit = 0; unit < contents.size(); ++unit) {
        const UnitContent& c = contents[unit];
        if (c.kind == UnitKind::Garbage)
            return fail("unit {} (offset {:#x}) holds garbage", unit, unit * unit_size);
        m_durable[unit] = c.kind == UnitKind::Zero ? 0 : c.seq;
        m_next_seq = std::max(m_next_seq, m_durable[unit] + 1);
    }
    settle();
    return {};
}

} // namespace vmgen::vm::disk::crash
