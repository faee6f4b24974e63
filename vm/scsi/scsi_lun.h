// ScsiLun: one SCSI logical unit (a disk, a DVD drive) that executes CDBs against the initiator's data buffer.
// Pure library code: no VMBus, no KVM. storvsp (the VMBus SCSI controller) parses a vmscsi_request, wraps the
// guest's GPA-direct buffer in a DataBuffer and calls ScsiLun::execute() from its I/O worker threads; the outcome
// gives the SCSI status, the sense data (fixed format) and the bytes moved, from which it builds the completion.
//
// The initiator is hostile: every CDB field is checked, every transfer is bounded by the buffer the initiator
// declared, and anything unsupported is answered with CHECK CONDITION and sense data, never a crash.
//
// DataBuffer is the initiator's scatter/gather buffer for one command. The LUN walks windows of it as host spans
// (for_each_segment) and hands those spans straight to BlockDevice::read/write, so disk data moves between the
// image and guest memory without an intermediate copy (a sector split across two segments goes through a
// one-sector bounce buffer). storvsp implements DataBuffer over vm::vmbus::GpaRanges in a few lines
// (for_each_segment → GpaRanges::for_each_segment with its GuestMemory; size → total_bytes()).
//
// Thread safety: execute() may be called concurrently from several threads on the same LUN (each call with
// its own DataBuffer). The bytes behind a DataBuffer may change under the LUN at any time (guest memory):
// parameter data is copied out before it is validated.
#pragma once

#include "protocols/scsi/spc.h"
#include "support/result.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::scsi {

using ScsiStatus = protocols::scsi::Status;

// The direction the initiator declared for the command's data (storvsc: vm_srb.data_in).
enum class DataDirection : uint8_t {
    None, // no data phase
    In, // Data-In: device to initiator (reads, INQUIRY, ...)
    Out, // Data-Out: initiator to device (writes, MODE SELECT, UNMAP, ...)
};

struct ScsiCommand {
    std::array<uint8_t, protocols::scsi::max_cdb_size> cdb {};
    uint8_t cdb_length = 0; // valid bytes of cdb (a CDB shorter than its opcode's group is refused)
    DataDirection direction = DataDirection::None;
    uint32_t transfer_length = 0; // bytes the initiator's buffer holds (storvsc: data_transfer_length)

    // Copies `bytes` (at most 16 are kept; a longer CDB gets cdb_length 0 and is refused by every LUN).
    static ScsiCommand make(std::span<const uint8_t> bytes, DataDirection direction, uint32_t transfer_length);
    [[nodiscard]] uint8_t opcode() const { return cdb[0]; }
};

// Fixed-format sense data (18 bytes, response code 0x70).
struct SenseData {
    std::array<uint8_t, sizeof(protocols::scsi::FixedSense)> bytes {};

    [[nodiscard]] uint8_t key() const { return bytes[2] & 0x0f; }
    [[nodiscard]] uint8_t asc() const { return bytes[12]; }
    [[nodiscard]] uint8_t ascq() const { return bytes[13]; }
    [[nodiscard]] protocols::scsi::AdditionalSense additional() const { return { asc(), ascq() }; }
    [[nodiscard]] bool information_valid() const { return (bytes[0] & protocols::scsi::sense_valid) != 0; }
    [[nodiscard]] uint32_t information() const;
    // Sense-key specific field pointer (ILLEGAL REQUEST): valid, in the CDB (else the parameter list), byte index.
    [[nodiscard]] bool field_pointer_valid() const { return (bytes[15] & protocols::scsi::sense_sksv) != 0; }
    [[nodiscard]] bool field_in_cdb() const { return (bytes[15] & protocols::scsi::sense_field_in_cdb) != 0; }
    [[nodiscard]] uint16_t field_pointer() const { return static_cast<uint16_t>((bytes[16] << 8) | bytes[17]); }

    // NO SENSE: what REQUEST SENSE returns when nothing is pending.
    static SenseData none();
    static SenseData make(uint8_t key, protocols::scsi::AdditionalSense additional);
};

struct ScsiOutcome {
    ScsiStatus status = ScsiStatus::Good;
    SenseData sense {}; // meaningful when status is CheckCondition (autosense): 18 bytes, fixed format
    uint64_t transferred = 0; // bytes moved to (Data-In) or taken from (Data-Out) the buffer; residual = length - this

    // Hints for the HBA (storvsp maps them to SRB statuses as it sees fit); status and sense are complete alone.
    bool buffer_too_small = false; // the command needed more buffer than the initiator declared (data overrun)
    std::optional<Error> host_error; // the backing store's or the buffer's failure behind this outcome (for logs)

    [[nodiscard]] bool good() const { return status == ScsiStatus::Good; }
    static ScsiOutcome good_with(uint64_t transferred);
    static ScsiOutcome check_condition(uint8_t key, protocols::scsi::AdditionalSense additional);
};

// The initiator's data buffer for one command.
class DataBuffer {
public:
    // Called once per host-contiguous segment, in order; an error stops the walk and is returned.
    using SegmentFn = std::function<Result<void>(std::span<uint8_t>)>;

    virtual ~DataBuffer() = default;

    // Bytes the buffer holds.
    [[nodiscard]] virtual uint64_t size() const = 0;
    // Walks [offset, offset + length) as host spans in order, without copying. Errors: the window is not inside
    // [0, size()), or the memory behind it cannot be reached (a guest page outside RAM). The LUN never asks for a
    // window outside [0, size()).
    virtual Result<void> for_each_segment(uint64_t offset, uint64_t length, const SegmentFn& fn) = 0;

    // Copies `in` into the buffer at `offset` (Data-In) / fills `out` from the buffer at `offset` (Data-Out).
    Result<void> copy_in(uint64_t offset, std::span<const uint8_t> in);
    Result<void> copy_out(uint64_t offset, std::span<uint8_t> out);
};

// A DataBuffer over host memory given as a list of spans (tests, fuzzing, and any HBA that has already mapped
// its buffer). The spans are not owned.
class SpanDataBuffer final : public DataBuffer {
public:
    SpanDataBuffer() = default;
    explicit SpanDataBuffer(std::span<uint8_t> single);
    explicit SpanDataBuffer(std::vector<std::span<uint8_t>> segments);

    [[nodiscard]] uint64_t size() const override { return m_size; }
    Result<void> for_each_segment(uint64_t offset, uint64_t length, const SegmentFn& fn) override;

private:
    std::vector<std::span<uint8_t>> m_segments;
    uint64_t m_size = 0;
};

class ScsiLun {
public:
    virtual ~ScsiLun() = default;

    // Executes one command. Never fails as a C++ call: every problem is a CHECK CONDITION outcome.
    virtual ScsiOutcome execute(const ScsiCommand& command, DataBuffer& data) = 0;
    // Executes the command only if it can complete without waiting for the backing storage (for a caller that
    // must not block: storvsp's channel worker). nullopt: it would have to wait; nothing observable changed
    // except that part of the data may already have been moved, and the caller runs execute() (which moves it
    // all again). The default never tries.
    virtual std::optional<ScsiOutcome> execute_nowait(const ScsiCommand& command, DataBuffer& data)
    {
        (void)command;
        (void)data;
        return std::nullopt;
    }
    // Peripheral device type (INQUIRY byte 0 bits 4:0): 0x00 disk, 0x05 CD/DVD.
    [[nodiscard]] virtual uint8_t peripheral_type() const = 0;
    // A logical unit reset (storvsp: RESET_LUN / RESET_BUS / RESET_ADAPTER): forgets volatile state such as a
    // DVD's medium removal prevention. In-flight commands are not cancelled.
    virtual void reset() { }
};

} // namespace vmgen::vm::scsi
