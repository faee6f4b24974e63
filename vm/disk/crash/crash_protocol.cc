#include "vm/disk/crash/crash_protocol.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::disk::crash {

namespace {

// A unit: magic, unit number, sequence number, filler (60 words), checksum of everything before it.
constexpr uint64_t stamp_magic = 0x314853524347'4D56ULL; // "VMGCRSH1" read little-endian
constexpr size_t magic_at = 0;
constexpr size_t unit_at = 8;
constexpr size_t seq_at = 16;
constexpr size_t filler_at = 24;
constexpr size_t checksum_at = unit_size - 8;

uint64_t load(std::span<const uint8_t> unit, size_t at)
{
    uint64_t v = 0;
    std::memcpy(&v, unit.data() + at, sizeof(v));
    return v;
}

void store(std::span<uint8_t> unit, size_t at, uint64_t v)
{
    std::memcpy(unit.data() + at, &v, sizeof(v));
}

// FNV-1a over 64-bit words, with a final mix so that every word affects every bit.
uint64_t checksum(std::span<const uint8_t> data)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t at = 0; at + 8 <= data.size(); at += 8) {
        h ^= load(data, at);
        h *= 0x100000001B3ULL;
    }
    return mix_seed(h, data.size());
}

void fill(std::span<uint8_t> unit, uint64_t unit_index, uint64_t seq)
{
    store(unit, magic_at, stamp_magic);
    store(unit, unit_at, unit_index);
    store(unit, seq_at, seq);
    Rng filler(mix_seed(seq, unit_index));
    for (size_t at = filler_at; at < checksum_at; at += 8)
        store(unit, at, filler.next());
    store(unit, checksum_at, checksum(unit.first(checksum_at)));
}

} // namespace

uint64_t mix_seed(uint64_t a, uint64_t b)
{
    Rng rng(a ^ (b * 0xD6E8FEB86659FD93ULL));
    rng.next();
    return rng.next() ^ b;
}

void stamp_units(std::span<uint8_t> out, uint64_t first_unit, uint64_t seq)
{
    for (size_t i = 0; i + unit_size <= out.size(); i += unit_size)
        fill(out.subspan(i, unit_size), first_unit + i / unit_size, seq);
}

UnitContent decode_unit(std::span<const uint8_t> unit, uint64_t unit_index)
{
    UnitContent c;
    if (std::all_of(unit.begin(), unit.end(), [](uint8_t b) { return b == 0; }))
        return c;
    c.kind = UnitKind::Garbage;
    if (load(unit, magic_at) != stamp_magic)
        return c;
    c.has_magic = true;
    c.claimed_unit = load(unit, unit_at);
    c.seq = load(unit, seq_at);
    if (load(unit, checksum_at) != checksum(unit.first(checksum_at)) || c.claimed_unit != unit_index)
        return c;
    c.kind = UnitKind::Stamped;
    return c;
}

} // namespace vmgen::vm::disk::crash
