#include "vm/scsi/scsi_disk.h"

#include "protocols/scsi/sbc.h"
#include "support/log.h"
#include "vm/scsi/block_transfer.h"
#include "vm/scsi/scsi_request.h"

#include <algorithm>
#include <bit>
#include <optional>
#include <vector>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;
namespace op = protocols::scsi::opcode;

namespace {

constexpr uint64_t write_same_chunk_bytes = 1u << 20;
constexpr uint64_t verify_chunk_bytes = 1u << 20;
constexpr uint64_t no_lba = UINT64_MAX;

// READ(6/10/12/16): false, WRITE(6/10/12/16): true, anything else: nullopt.
std::optional<bool> read_write_opcode(uint8_t opcode)
{
    switch (opcode) {
    case op::read_6:
    case op::read_10:
    case op::read_12:
    case op::read_16:
        return false;
    case op::write_6:
    case op::write_10:
    case op::write_12:
    case op::write_16:
        return true;
    default:
        return std::nullopt;
    }
}

} // namespace

Result<std::unique_ptr<ScsiDisk>> ScsiDisk::create(std::unique_ptr<disk::BlockDevice> disk, ScsiDiskOptions options)
{
    if (!disk)
        return fail("SCSI disk: no block device");
    const uint32_t sector = disk->sector_size();
    if (sector != 512 && sector != 4096)
        return fail("SCSI disk: logical sector size {} is neither 512 nor 4096", sector);
    if (disk->size() < sector || disk->size() % sector != 0)
        return fail("SCSI disk: size {} is not a positive multiple of the {}-byte sector", disk->size(), sector);
    if (options.max_transfer_bytes < sector)
        return fail("SCSI disk: maximum transfer of {} bytes is less than a block", options.max_transfer_bytes);
    return std::unique_ptr<ScsiDisk>(new ScsiDisk(std::move(disk), std::move(options)));
}

ScsiDisk::ScsiDisk(std::unique_ptr<disk::BlockDevice> disk, ScsiDiskOptions options)
    : m_disk(std::move(disk))
    , m_options(std::move(options))
{
    if (m_options.identity.product.empty())
        m_options.identity.product = "Virtual Disk";
    m_options.identity = normalized_identity(std::move(m_options.identity));
    m_block_size = m_disk->sector_size();
    const uint32_t physical = m_disk->info().physical_sector_size;
    if (physical > m_block_size && physical % m_block_size == 0 && std::has_single_bit(physical / m_block_size))
        m_physical_exponent = static_cast<uint8_t>(std::countr_zero(physical / m_block_size));
    m_read_only = m_options.read_only || m_disk->read_only();
    m_discard = m_options.discard && !m_read_only;
    m_max_transfer_blocks = m_options.max_transfer_bytes / m_block_size;
    m_max_unmap_blocks
        = static_cast<uint32_t>(std::min<uint64_t>(m_options.max_unmap_bytes / m_block_size, UINT32_MAX));
    m_max_unmap_blocks = std::max<uint32_t>(m_max_unmap_blocks, 1);
}

bool ScsiDisk::range_ok(uint64_t lba, uint64_t count) const
{
    const uint64_t blocks = block_count();
    return lba < blocks && count <= blocks - lba;
}

ScsiOutcome ScsiDisk::execute(const ScsiCommand& command, DataBuffer& data)
{
    ScsiRequest request(command, data);
    if (request.cdb_size() == 0) {
        log_debug("scsi", "disk: opcode {:#04x} with a {}-byte CDB refused", request.opcode(), command.cdb_length);
        return sense::invalid_opcode();
    }
    if (request.naca())
        return sense::invalid_field_in_cdb(static_cast<uint16_t>(request.cdb_size() - 1), 2);
    switch (request.opcode()) {
    case op::inquiry:
    case op::report_luns:
    case op::request_sense:
        break; // these never report a unit attention (SPC-4 "Unit attention condition")
    default:
        if (m_capacity_changed.exchange(false))
            return sense::unit_attention(wire::asc::capacity_data_has_changed);
    }
    return dispatch(request);
}

ScsiOutcome ScsiDisk::dispatch(ScsiRequest& request)
{
    if (auto write = read_write_opcode(request.opcode()))
        return read_write(request, *write);
    switch (request.opcode()) {
    case op::test_unit_ready:
        return ScsiOutcome::good_with(0);
    case op::request_sense:
        return request_sense(request);
    case op::inquiry:
        return inquiry(request);
    case op::report_luns: {
        const uint16_t lun = m_options.lun;
        return report_luns(request.command(), request.data(), std::span<const uint16_t>(&lun, 1));
    }
    case op::read_capacity_10:
        return read_capacity_10(request);
    case op::service_action_in_16:
        if ((request.command().cdb[1] & 0x1f) == wire::service_action_read_capacity_16)
            return read_capacity_16(request);
        return sense::invalid_field_in_cdb(1, 4);
    case op::mode_sense_6:
    case op::mode_sense_10:
        return mode_sense(request);
    case op::mode_select_6:
    case op::mode_select_10:
        return mode_select(request);
    case op::verify_10:
    case op::verify_16:
        return verify(request);
    case op::synchronize_cache_10:
    case op::synchronize_cache_16:
        return synchronize_cache(request);
    case op::unmap:
        return unmap(request);
    case op::write_same_10:
    case op::write_same_16:
        return write_same(request);
    case op::start_stop_unit:
        return start_stop_unit(request);
    case op::prevent_allow_medium_removal:
        return ScsiOutcome::good_with(0); // nothing to lock on a fixed disk
    default:
        log_debug("scsi", "disk: unsupported opcode {:#04x}", request.opcode());
        return sense::invalid_opcode();
    }
}

ScsiOutcome ScsiDisk::read_write(ScsiRequest& request, bool write)
{
    const auto [lba, count, flags, length_field] = request.block_fields();
    if ((flags & wire::rw_protect_mask) != 0)
        return sense::invalid_field_in_cdb(1, 7); // no protection information
    // FUA on a read asks for the medium's data, which is all we have: nothing to do.
    return *transfer(request, write, lba, count, write && (flags & wire::rw_fua) != 0, length_field, Blocking::yes);
}

std::optional<ScsiOutcome> ScsiDisk::execute_nowait(const ScsiCommand& command, DataBuffer& data)
{
    auto is_write = read_write_opcode(command.opcode());
    if (!is_write)
        return std::nullopt;
    const bool write = *is_write;
    // execute() answers these (malformed CDB, NACA, a pending unit attention).
    if (m_capacity_changed.load())
        return std::nullopt;
    ScsiRequest request(command, data);
    if (request.cdb_size() == 0 || request.naca())
        return std::nullopt;
    const auto [lba, count, flags, length_field] = request.block_fields();
    if ((flags & wire::rw_protect_mask) != 0)
        return std::nullopt;
    const bool fua = write && (flags & wire::rw_fua) != 0;
    if (write && (fua || !m_write_cache.load()))
        return std::nullopt; // a flush follows: that waits for the device
    return transfer(request, write, lba, count, fua, length_field, Blocking::no);
}

std::optional<ScsiOutcome> ScsiDisk::transfer(ScsiRequest& request, bool write, uint64_t lba, uint64_t count,
    bool fua, uint16_t length_field, Blocking blocking)
{
    if (write && m_read_only)
        return sense::write_protected();
    if (!range_ok(lba, count))
        return sense::lba_out_of_range();
    if (count == 0)
        return ScsiOutcome::good_with(0);
    if (count > m_max_transfer_blocks)
        return sense::invalid_field_in_cdb(length_field);
    const uint64_t bytes = count * m_block_size;
    if (bytes > (write ? request.data_out_limit() : request.data_in_limit()))
        return sense::buffer_too_small(length_field);

    TransferResult result = write
        ? write_from_buffer(*m_disk, lba * m_block_size, bytes, request.data(), 0, blocking)
        : read_to_buffer(*m_disk, lba * m_block_size, bytes, request.data(), 0, blocking);
    if (result.failure == TransferResult::Failure::WouldBlock)
        return std::nullopt;
    if (!result.ok()) {
        const uint64_t done_blocks = result.done / m_block_size;
        ScsiOutcome outcome;
        if (result.failure == TransferResult::Failure::Disk) {
            log_debug("scsi", "disk: {} at LBA {} failed: {}", write ? "write" : "read", lba + done_blocks,
                result.error ? result.error->message() : "");
            outcome = sense::medium_error(write ? wire::asc::write_error : wire::asc::unrecovered_read_error,
                lba + done_blocks, result.error.value_or(Error("I/O failed")));
        } else {
            outcome = sense::buffer_fault(result.error.value_or(Error("buffer fault")), 0);
        }
        outcome.transferred = done_blocks * m_block_size;
        return outcome;
    }
    if (write && (fua || !m_write_cache.load())) {
        if (auto flushed = m_disk->flush(); !flushed) {
            ScsiOutcome outcome = sense::medium_error(wire::asc::write_error, lba, std::move(flushed).error());
            outcome.transferred = bytes;
            return outcome;
        }
    }
    return ScsiOutcome::good_with(bytes);
}

ScsiOutcome ScsiDisk::flush_if_write_through(uint64_t lba)
{
    if (!m_write_cache.load()) {
        if (auto flushed = m_disk->flush(); !flushed)
            return sense::medium_error(wire::asc::write_error, lba, std::move(flushed).error());
    }
    return ScsiOutcome::good_with(0);
}

ScsiOutcome ScsiDisk::verify(ScsiRequest& request)
{
    const auto [lba, count, flags, length_field] = request.block_fields();
    if ((flags & wire::rw_protect_mask) != 0)
        return sense::invalid_field_in_cdb(1, 7);
    const uint8_t bytchk = (flags & wire::verify_bytchk_mask) >> wire::verify_bytchk_shift;
    if (bytchk == 2)
        return sense::invalid_field_in_cdb(1, 2);
    if (!range_ok(lba, count))
        return sense::lba_out_of_range();
    // BYTCHK 0: a medium verification; our media have no unreadable-but-present state to find cheaply, so the
    // range check is the verification.
    if (count == 0 || bytchk == 0)
        return ScsiOutcome::good_with(0);

    // BYTCHK 1: compare with the Data-Out buffer; BYTCHK 3: compare every block with the one block sent.
    const uint64_t bytes = count * m_block_size;
    const uint64_t sent = bytchk == 1 ? bytes : m_block_size;
    if (bytchk == 1 && count > m_max_transfer_blocks)
        return sense::invalid_field_in_cdb(length_field);
    if (sent > request.data_out_limit())
        return sense::buffer_too_small(length_field);
    std::vector<uint8_t> pattern;
    if (bytchk == 3) {
        if (auto failure = request.fetch_parameters(m_block_size, length_field, pattern))
            return *failure;
    }
    const uint64_t chunk = std::max<uint64_t>(verify_chunk_bytes / m_block_size, 1) * m_block_size;
    std::vector<uint8_t> medium(static_cast<size_t>(std::min(chunk, bytes)));
    std::vector<uint8_t> expected(medium.size());
    for (uint64_t done = 0; done < bytes;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, bytes - done));
        const std::span<uint8_t> got(medium.data(), n);
        if (auto read = m_disk->read(lba * m_block_size + done, got); !read)
            return sense::medium_error(
                wire::asc::unrecovered_read_error, lba + done / m_block_size, std::move(read).error());
        const std::span<uint8_t> want(expected.data(), n);
        if (bytchk == 1) {
            if (auto copied = request.data().copy_out(done, want); !copied)
                return sense::buffer_fault(std::move(copied).error(), done);
        } else {
            for (size_t at = 0; at < n; at += m_block_size)
                std::copy(pattern.begin(), pattern.end(), want.begin() + static_cast<std::ptrdiff_t>(at));
        }
        const auto mismatch = std::mismatch(got.begin(), got.end(), want.begin());
        if (mismatch.first != got.end()) {
            const uint64_t at = done + static_cast<uint64_t>(mismatch.first - got.begin());
            return sense::miscompare(bytchk == 1 ? at : at % m_block_size);
        }
        done += n;
    }
    return ScsiOutcome::good_with(sent);
}

ScsiOutcome ScsiDisk::synchronize_cache(ScsiRequest& request)
{
    const auto [lba, count, flags, length_field] = request.block_fields();
    // A count of 0 means "through the last block"; IMMED is honoured by finishing before we answer.
    if (!range_ok(lba, count))
        return sense::lba_out_of_range();
    if (m_read_only)
        return ScsiOutcome::good_with(0);
    if (auto flushed = m_disk->flush(); !flushed)
        return sense::medium_error(wire::asc::write_error, no_lba, std::move(flushed).error());
    return ScsiOutcome::good_with(0);
}

ScsiOutcome ScsiDisk::unmap(ScsiRequest& request)
{
    if (m_read_only)
        return sense::write_protected();
    if (!m_discard)
        return sense::invalid_opcode(); // LBPU = 0: UNMAP is not supported
    const auto cdb = request.cdb<wire::UnmapCdb>();
    if ((cdb.flags & wire::unmap_anchor) != 0)
        return sense::invalid_field_in_cdb(1, 0); // ANC_SUP = 0
    const uint16_t length = cdb.parameter_list_length.get();
    if (length == 0)
        return ScsiOutcome::good_with(0);
    if (length < sizeof(wire::UnmapParameterHeader))
        return sense::parameter_list_length_error();
    std::vector<uint8_t> list;
    if (auto failure = request.fetch_parameters(length, 7, list))
        return *failure;

    wire::UnmapParameterHeader header {};
    std::memcpy(&header, list.data(), sizeof(header));
    // Descriptors past the parameter list, and a trailing partial one, are ignored (SBC-3 "UNMAP parameter list").
    const size_t available = std::min<size_t>(header.block_descriptor_length.get(), list.size() - sizeof(header));
    const size_t count = available / sizeof(wire::UnmapBlockDescriptor);
    if (count > m_options.max_unmap_descriptors)
        return sense::invalid_field_in_parameters(2);

    struct Range {
        uint64_t lba;
        uint64_t blocks;
    };
    std::vector<Range> ranges;
    ranges.reserve(count);
    uint64_t total = 0;
    for (size_t i = 0; i < count; ++i) {
        wire::UnmapBlockDescriptor descriptor {};
        const size_t at = sizeof(header) + i * sizeof(descriptor);
        std::memcpy(&descriptor, list.data() + at, sizeof(descriptor));
        const uint64_t lba = descriptor.lba.get();
        const uint64_t blocks = descriptor.block_count.get();
        if (!range_ok(lba, blocks))
            return sense::lba_out_of_range();
        total += blocks; // at most 256 descriptors of 32-bit counts: no overflow
        if (total > m_max_unmap_blocks)
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at + 8));
        if (blocks != 0)
            ranges.push_back({ lba, blocks });
    }
    // Everything was validated before the first discard: a bad list changes nothing.
    for (const Range& range : ranges) {
        if (auto done = m_disk->discard(range.lba * m_block_size, range.blocks * m_block_size); !done)
            return sense::medium_error(wire::asc::write_error, range.lba, std::move(done).error());
    }
    ScsiOutcome outcome = flush_if_write_through(ranges.empty() ? 0 : ranges.front().lba);
    outcome.transferred = length;
    return outcome;
}

ScsiOutcome ScsiDisk::write_same(ScsiRequest& request)
{
    const bool sixteen = request.opcode() == op::write_same_16;
    const auto [lba, count, flags, length_field] = request.block_fields();
    if ((flags & wire::rw_protect_mask) != 0)
        return sense::invalid_field_in_cdb(1, 7);
    if ((flags & wire::write_same_anchor) != 0)
        return sense::invalid_field_in_cdb(1, 4);
    if ((flags & wire::write_same_obsolete) != 0)
        return sense::invalid_field_in_cdb(1, 2);
    const bool ndob = (flags & wire::write_same_ndob) != 0;
    if (ndob && !sixteen)
        return sense::invalid_field_in_cdb(1, 0);
    if (m_read_only)
        return sense::write_protected();
    if (count == 0)
        return sense::invalid_field_in_cdb(length_field); // WSNZ = 1
    if (!range_ok(lba, count))
        return sense::lba_out_of_range();
    if (count > m_max_unmap_blocks)
        return sense::invalid_field_in_cdb(length_field);

    std::vector<uint8_t> block;
    if (ndob) {
        block.assign(m_block_size, 0);
    } else if (auto failure = request.fetch_parameters(m_block_size, length_field, block)) {
        return *failure;
    }
    const uint64_t taken = ndob ? 0 : m_block_size;
    const bool zero = std::all_of(block.begin(), block.end(), [](uint8_t b) { return b == 0; });
    // UNMAP asks for deallocation; unmapped blocks read as zeroes (LBPRZ), so only a zero block may be unmapped.
    if ((flags & wire::write_same_unmap) != 0 && m_discard && zero) {
        if (auto done = m_disk->discard(lba * m_block_size, count * m_block_size); !done)
            return sense::medium_error(wire::asc::write_error, lba, std::move(done).error());
    } else {
        const uint64_t chunk_blocks = std::min<uint64_t>(count, write_same_chunk_bytes / m_block_size);
        std::vector<uint8_t> chunk(static_cast<size_t>(chunk_blocks * m_block_size));
        for (size_t at = 0; at < chunk.size(); at += m_block_size)
            std::copy(block.begin(), block.end(), chunk.begin() + static_cast<std::ptrdiff_t>(at));
        for (uint64_t done = 0; done < count;) {
            const uint64_t n = std::min(chunk_blocks, count - done);
            const std::span<const uint8_t> piece(chunk.data(), static_cast<size_t>(n * m_block_size));
            if (auto written = m_disk->write((lba + done) * m_block_size, piece); !written)
                return sense::medium_error(wire::asc::write_error, lba + done, std::move(written).error());
            done += n;
        }
    }
    ScsiOutcome outcome = flush_if_write_through(lba);
    outcome.transferred = taken;
    return outcome;
}

ScsiOutcome ScsiDisk::start_stop_unit(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::StartStopUnitCdb>();
    // A virtual disk is always spinning: accept every power condition. Stopping without NO_FLUSH makes the
    // cache durable first, as a real disk would before it spins down.
    const bool stop
        = (cdb.flags & wire::start_stop_power_condition_mask) == 0 && (cdb.flags & wire::start_stop_start) == 0;
    if (stop && (cdb.flags & wire::start_stop_no_flush) == 0 && !m_read_only) {
        if (auto flushed = m_disk->flush(); !flushed)
            return sense::medium_error(wire::asc::write_error, no_lba, std::move(flushed).error());
    }
    return ScsiOutcome::good_with(0);
}

} // namespace vmgen::vm::scsi
