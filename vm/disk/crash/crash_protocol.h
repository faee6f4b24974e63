// What the crash-consistency writer (disk_crash_writer.cc) and its parent (disk_crash_test.cc) share:
// self-describing payload units, and the fixed-size records the writer sends up a pipe.
//
// Every 512-byte unit the writer writes carries its own unit number (its offset / 512 on the virtual disk),
// the sequence number of the write it belongs to, filler derived from both, and a checksum: read back, a
// unit says which write left it there, or that it is zeroes, or garbage (bad checksum, or a stamp that names
// another unit: data in the wrong place).
#pragma once

#include <cstdint>
#include <span>

namespace vmgen::vm::disk::crash {

constexpr uint32_t unit_size = 512;

// Fills `out` (a whole number of units) with the stamps of write `seq` starting at unit `first_unit`.
void stamp_units(std::span<uint8_t> out, uint64_t first_unit, uint64_t seq);

enum class UnitKind { Zero, Stamped, Garbage };

struct UnitContent {
    UnitKind kind = UnitKind::Zero;
    uint64_t seq = 0; // Stamped: the write; Garbage: what the stamp claims, if it has a magic
    uint64_t claimed_unit = 0; // Garbage with a magic: the unit the stamp names
    bool has_magic = false; // Garbage: whether the unit starts with the stamp magic
};

// Decodes the unit found at `unit_index` (512 bytes).
UnitContent decode_unit(std::span<const uint8_t> unit, uint64_t unit_index);

// One record per write(2) on the report pipe (atomic: smaller than PIPE_BUF). The writer sends Write and
// Discard before it issues the operation, Flushed after flush() returns (every operation up to `seq` is
// durable), Closed after close() returns (everything is durable), Ready once the image is open.
enum class RecordKind : uint32_t { Ready = 1, Write = 2, Discard = 3, Flushed = 4, Closed = 5 };

struct Record {
    RecordKind kind = RecordKind::Ready;
    uint32_t reserved = 0;
    uint64_t seq = 0; // Ready: the first sequence number the writer will use
    uint64_t offset = 0; // Write/Discard: bytes on the virtual disk
    uint64_t length = 0;
};
static_assert(sizeof(Record) == 32);

// The report pipe's file descriptor in the writer.
constexpr int report_fd = 3;

// A small deterministic generator (splitmix64): the same seed gives the same operations on every machine.
class Rng {
public:
    explicit Rng(uint64_t seed)
        : m_state(seed)
    {
    }
    uint64_t next()
    {
        uint64_t z = (m_state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, n) (n > 0; the modulo bias is irrelevant here).
    uint64_t below(uint64_t n) { return next() % n; }
    // Uniform in [lo, hi].
    uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
    // True with probability percent / 100.
    bool percent(uint64_t percent) { return below(100) < percent; }

private:
    uint64_t m_state;
};

// Mixes values into one seed (for per-case, per-round seeds derived from the test's seed).
uint64_t mix_seed(uint64_t a, uint64_t b);

} // namespace vmgen::vm::disk::crash
