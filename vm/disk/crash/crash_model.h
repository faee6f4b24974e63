// The parent's model of an image a crash writer works on (disk_crash_test.cc): what every 512-byte unit must
// hold after the writer is killed, built from the writer's records (crash_protocol.h).
//
// For each unit the model keeps the durable value: the sequence number of the last write to it acknowledged
// as flushed, or 0 for zeroes (never written, or discarded), and the sequence number of the operation that
// left it. Operations not acknowledged are pending: the writer may have issued them, completed them, or died
// before or inside them. A writer's flush acknowledges only its own operations: those of an earlier writer
// that was killed stay pending (what reached the file may or may not be there) until a check. After a crash
// a unit may hold its durable value or the value of a pending operation that covers it and came after the
// durable one (a discard: zeroes); anything else (garbage, data from the wrong place, an older write, a lost
// acknowledged write) is a problem.
#pragma once

#include "support/result.h"
#include "vm/disk/block_device.h"
#include "vm/disk/crash/crash_protocol.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vmgen::vm::disk::crash {

class CrashModel {
public:
    explicit CrashModel(uint64_t disk_size);

    // One record from the writer, in the order received. Refuses records that make no sense (out of the
    // disk, sequence numbers going backwards): the harness itself is broken then.
    Result<void> apply(const Record& record);

    // Reads every unit of `disk` and compares it with the model; returns the problems found (at most
    // `max_problems` described, then a count). Afterwards the model's durable state is what the disk holds
    // (the caller makes it durable by closing the image) and nothing is pending.
    Result<std::vector<std::string>> check(BlockDevice& disk, size_t max_problems = 16);

    // Takes what `disk` holds as the durable state (the starting point of a fresh image, or of a
    // differencing image over a parent with data). Every unit must be zeroes or a valid stamp.
    Result<void> observe(BlockDevice& disk);

    [[nodiscard]] uint64_t next_seq() const { return m_next_seq; }
    [[nodiscard]] uint64_t acknowledged() const { return m_acknowledged; }
    [[nodiscard]] size_t pending() const { return m_pending.size(); }
    [[nodiscard]] uint64_t units() const { return m_durable.size(); }
    // The durable value of `unit` (tests of the model).
    [[nodiscard]] uint64_t durable(uint64_t unit) const { return m_durable[unit]; }
    // Operations reported since the last check or observe.
    [[nodiscard]] size_t operations() const { return m_ops.size(); }

private:
    struct Op {
        bool discard = false;
        uint64_t first_unit = 0;
        uint64_t end_unit = 0;
    };

    void acknowledge(uint64_t last);
    void settle();
    [[nodiscard]] bool allowed(uint64_t unit, const UnitContent& content) const;
    [[nodiscard]] std::string describe_value(uint64_t seq) const;
    [[nodiscard]] std::string describe(uint64_t unit, const UnitContent& content) const;
    Result<std::vector<UnitContent>> read_units(BlockDevice& disk) const;

    uint64_t m_disk_size;
    std::vector<uint64_t> m_durable; // per unit: sequence number of the durable write, 0 = zeroes
    std::vector<uint64_t> m_durable_at; // per unit: the operation that left the durable value (0: none)
    std::map<uint64_t, Op> m_pending; // by sequence number: operations not acknowledged
    std::map<uint64_t, Op> m_ops; // every operation since the last check (to describe problems)
    uint64_t m_next_seq = 1; // every record's sequence number is at least this
    uint64_t m_writer_first = 1; // the current writer's first sequence number
    uint64_t m_acknowledged = 0;
};

} // namespace vmgen::vm::disk::crash
