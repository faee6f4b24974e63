// ScsiRequest: one command's exchange with the initiator, shared by the LUN implementations: the CDB decoded
// into its wire struct, the Data-In / Data-Out limits the initiator declared, responses truncated to the
// allocation length, parameter data copied out of the buffer, and the CHECK CONDITION outcomes (namespace sense).
// Internal to vm/scsi.
#pragma once

#include "vm/scsi/scsi_lun.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace vmgen::vm::scsi {

// Appends the wire bytes of a protocols/scsi struct to a response being assembled / returns them.
template <typename T> void append_wire(std::vector<uint8_t>& out, const T& value)
{
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &value, sizeof(T));
}
template <typename T> std::vector<uint8_t> wire_bytes(const T& value)
{
    std::vector<uint8_t> out;
    append_wire(out, value);
    return out;
}

// CHECK CONDITION outcomes with their sense data. Field pointers name the CDB (or parameter list) byte at fault
// and, where given, the bit (sense-key specific bytes 15-17).
namespace sense {
ScsiOutcome invalid_opcode();
ScsiOutcome invalid_field_in_cdb(uint16_t byte, int bit = -1);
ScsiOutcome invalid_field_in_parameters(uint16_t byte, int bit = -1);
ScsiOutcome parameter_list_length_error();
ScsiOutcome lba_out_of_range();
ScsiOutcome write_protected();
ScsiOutcome saving_not_supported();
ScsiOutcome medium_not_present();
ScsiOutcome unit_attention(protocols::scsi::AdditionalSense additional);
ScsiOutcome incompatible_medium();
ScsiOutcome removal_prevented();
// MEDIUM ERROR with the first failing LBA in the INFORMATION field (when it fits 32 bits).
ScsiOutcome medium_error(protocols::scsi::AdditionalSense additional, uint64_t lba, Error error);
ScsiOutcome miscompare(uint64_t buffer_offset);
// The buffer the initiator declared is smaller than the command's fixed transfer: INVALID FIELD IN CDB at the
// transfer length field, with ScsiOutcome::buffer_too_small set.
ScsiOutcome buffer_too_small(uint16_t length_field_byte);
// The buffer could not be read or written (a guest page outside RAM): ABORTED COMMAND / DATA PHASE ERROR.
ScsiOutcome buffer_fault(Error error, uint64_t transferred);
} // namespace sense

// The fields every block command CDB has (READ/WRITE 6-16, VERIFY, WRITE SAME, SYNCHRONIZE CACHE), whatever its size.
struct BlockCdbFields {
    uint64_t lba = 0;
    uint64_t count = 0; // blocks; READ/WRITE(6)'s 0 already means 256
    uint8_t flags = 0; // byte 1 (0 for the 6-byte form, which has none)
    uint16_t length_field = 0; // CDB byte where the count starts, for sense data pointing at it
};

// The fields MODE SELECT(6) and (10) share.
struct ModeSelectFields {
    uint8_t flags = 0; // byte 1: PF, SP
    uint32_t parameter_list_length = 0;
};

class ScsiRequest {
public:
    ScsiRequest(const ScsiCommand& command, DataBuffer& data)
        : m_command(command)
        , m_data(data)
    {
    }

    [[nodiscard]] const ScsiCommand& command() const { return m_command; }
    [[nodiscard]] uint8_t opcode() const { return m_command.cdb[0]; }
    [[nodiscard]] DataBuffer& data() { return m_data; }

    // The CDB size the opcode's group implies, or 0 when the CDB is shorter than that (or the group is not one
    // we decode): such a command is refused with INVALID COMMAND OPERATION CODE.
    [[nodiscard]] size_t cdb_size() const;
    // NACA set in the CONTROL byte (we do not support ACA): INVALID FIELD IN CDB.
    [[nodiscard]] bool naca() const;

    // The CDB as its wire struct (sizeof(Cdb) must not exceed cdb_size(), which the dispatcher has checked).
    template <typename Cdb> [[nodiscard]] Cdb cdb() const
    {
        static_assert(std::is_trivially_copyable_v<Cdb> && sizeof(Cdb) <= protocols::scsi::max_cdb_size);
        Cdb value {};
        std::memcpy(&value, m_command.cdb.data(), sizeof(Cdb));
        return value;
    }

    // The CDB decoded by the size its opcode's group implies (6, 10, 12 or 16 bytes).
    [[nodiscard]] BlockCdbFields block_fields() const;
    [[nodiscard]] ModeSelectFields mode_select_fields() const;

    // Bytes the initiator declared for Data-In / Data-Out (0 when it declared the other direction or none).
    [[nodiscard]] uint64_t data_in_limit() const;
    [[nodiscard]] uint64_t data_out_limit() const;

    // Sends `response`, truncated to the allocation length and to the Data-In buffer (a shorter buffer is not an
    // error for commands with an allocation length: the residual tells the initiator).
    ScsiOutcome respond(std::span<const uint8_t> response, uint64_t allocation_length);
    // Copies `length` bytes of parameter data out of the Data-Out buffer into `out`. On failure returns the
    // outcome to answer: the buffer is smaller than `length` (buffer_too_small at `length_field_byte`) or faulted.
    std::optional<ScsiOutcome> fetch_parameters(uint64_t length, uint16_t length_field_byte, std::vector<uint8_t>& out);

private:
    const ScsiCommand& m_command;
    DataBuffer& m_data;
};

} // namespace vmgen::vm::scsi
