#include "vm/scsi/scsi_request.h"

#include "protocols/scsi/sbc.h"
#include "protocols/scsi/spc.h"

#include <algorithm>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;

namespace sense {
namespace {

ScsiOutcome illegal_request_at(wire::AdditionalSense additional, bool in_cdb, uint16_t byte, int bit)
{
    ScsiOutcome outcome = ScsiOutcome::check_condition(wire::sense_key::illegal_request, additional);
    uint8_t flags = wire::sense_sksv;
    if (in_cdb)
        flags |= wire::sense_field_in_cdb;
    if (bit >= 0 && bit < 8)
        flags |= static_cast<uint8_t>(wire::sense_bit_pointer_valid | bit);
    outcome.sense.bytes[15] = flags;
    outcome.sense.bytes[16] = static_cast<uint8_t>(byte >> 8);
    outcome.sense.bytes[17] = static_cast<uint8_t>(byte & 0xff);
    return outcome;
}

} // namespace

ScsiOutcome invalid_opcode()
{
    return illegal_request_at(wire::asc::invalid_command_operation_code, true, 0, -1);
}

ScsiOutcome invalid_field_in_cdb(uint16_t byte, int bit)
{
    return illegal_request_at(wire::asc::invalid_field_in_cdb, true, byte, bit);
}

ScsiOutcome invalid_field_in_parameters(uint16_t byte, int bit)
{
    return illegal_request_at(wire::asc::invalid_field_in_parameter_list, false, byte, bit);
}

ScsiOutcome parameter_list_length_error()
{
    return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::parameter_list_length_error);
}

ScsiOutcome lba_out_of_range()
{
    return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::lba_out_of_range);
}

ScsiOutcome write_protected()
{
    return ScsiOutcome::check_condition(wire::sense_key::data_protect, wire::asc::write_protected);
}

ScsiOutcome saving_not_supported()
{
    return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::saving_parameters_not_supported);
}

ScsiOutcome medium_not_present()
{
    return ScsiOutcome::check_condition(wire::sense_key::not_ready, wire::asc::medium_not_present);
}

ScsiOutcome unit_attention(wire::AdditionalSense additional)
{
    return ScsiOutcome::check_condition(wire::sense_key::unit_attention, additional);
}

ScsiOutcome incompatible_medium()
{
    return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::incompatible_medium_format);
}

ScsiOutcome removal_prevented()
{
    return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::medium_removal_prevented);
}

ScsiOutcome medium_error(wire::AdditionalSense additional, uint64_t lba, Error error)
{
    ScsiOutcome outcome = ScsiOutcome::check_condition(wire::sense_key::medium_error, additional);
    if (lba <= UINT32_MAX) {
        wire::Be32 information {};
        information.set(static_cast<uint32_t>(lba));
        outcome.sense.bytes[0] |= wire::sense_valid;
        std::copy(std::begin(information.bytes), std::end(information.bytes), outcome.sense.bytes.begin() + 3);
    }
    outcome.host_error = std::move(error);
    return outcome;
}

ScsiOutcome miscompare(uint64_t buffer_offset)
{
    ScsiOutcome outcome
        = ScsiOutcome::check_condition(wire::sense_key::miscompare, wire::asc::miscompare_during_verify);
    if (buffer_offset <= UINT32_MAX) {
        wire::Be32 information {};
        information.set(static_cast<uint32_t>(buffer_offset));
        outcome.sense.bytes[0] |= wire::sense_valid;
        std::copy(std::begin(information.bytes), std::end(information.bytes), outcome.sense.bytes.begin() + 3);
    }
    return outcome;
}

ScsiOutcome buffer_too_small(uint16_t length_field_byte)
{
    ScsiOutcome outcome = invalid_field_in_cdb(length_field_byte);
    outcome.buffer_too_small = true;
    return outcome;
}

ScsiOutcome buffer_fault(Error error, uint64_t transferred)
{
    ScsiOutcome outcome = ScsiOutcome::check_condition(wire::sense_key::aborted_command, wire::asc::data_phase_error);
    outcome.transferred = transferred;
    outcome.host_error = std::move(error);
    return outcome;
}

} // namespace sense

size_t ScsiRequest::cdb_size() const
{
    const size_t size = wire::cdb_size_for_opcode(opcode());
    if (size == 0 || m_command.cdb_length < size || m_command.cdb_length > wire::max_cdb_size)
        return 0;
    return size;
}

bool ScsiRequest::naca() const
{
    const size_t size = cdb_size();
    return size != 0 && (m_command.cdb[size - 1] & wire::control_naca) != 0;
}

uint64_t ScsiRequest::data_in_limit() const
{
    if (m_command.direction != DataDirection::In)
        return 0;
    return std::min<uint64_t>(m_command.transfer_length, m_data.size());
}

uint64_t ScsiRequest::data_out_limit() const
{
    if (m_command.direction != DataDirection::Out)
        return 0;
    return std::min<uint64_t>(m_command.transfer_length, m_data.size());
}

ScsiOutcome ScsiRequest::respond(std::span<const uint8_t> response, uint64_t allocation_length)
{
    const uint64_t count = std::min<uint64_t>({ response.size(), allocation_length, data_in_limit() });
    if (count == 0)
        return ScsiOutcome::good_with(0);
    if (auto copied = m_data.copy_in(0, response.first(static_cast<size_t>(count))); !copied)
        return sense::buffer_fault(std::move(copied).error(), 0);
    return ScsiOutcome::good_with(count);
}

std::optional<ScsiOutcome> ScsiRequest::fetch_parameters(
    uint64_t length, uint16_t length_field_byte, std::vector<uint8_t>& out)
{
    if (length > data_out_limit())
        return sense::buffer_too_small(length_field_byte);
    out.assign(static_cast<size_t>(length), 0);
    if (length == 0)
        return std::nullopt;
    if (auto copied = m_data.copy_out(0, out); !copied)
        return sense::buffer_fault(std::move(copied).error(), 0);
    return std::nullopt;
}

BlockCdbFields ScsiRequest::block_fields() const
{
    BlockCdbFields fields;
    switch (opcode() >> 5) {
    case 0: { // 6-byte: 21-bit LBA, a count of 0 is 256 blocks
        const auto c = cdb<wire::Rw6Cdb>();
        fields.lba = c.lba.get() & wire::rw6_lba_mask;
        fields.count = c.length == 0 ? 256 : c.length;
        fields.length_field = 4;
        break;
    }
    case 1:
    case 2: {
        const auto c = cdb<wire::Rw10Cdb>();
        fields = { c.lba.get(), c.length.get(), c.flags, 7 };
        break;
    }
    case 5: {
        const auto c = cdb<wire::Rw12Cdb>();
        fields = { c.lba.get(), c.length.get(), c.flags, 6 };
        break;
    }
    default: {
        const auto c = cdb<wire::Rw16Cdb>();
        fields = { c.lba.get(), c.length.get(), c.flags, 10 };
        break;
    }
    }
    return fields;
}

ModeSelectFields ScsiRequest::mode_select_fields() const
{
    if (opcode() == wire::opcode::mode_select_10) {
        const auto c = cdb<wire::ModeSelect10Cdb>();
        return { c.flags, c.parameter_list_length.get() };
    }
    const auto c = cdb<wire::ModeSelect6Cdb>();
    return { c.flags, c.parameter_list_length };
}

} // namespace vmgen::vm::scsi
