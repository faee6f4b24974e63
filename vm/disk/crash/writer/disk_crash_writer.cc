// disk_crash_writer: the process the crash-consistency test (disk_crash_test.cc) kills with SIGKILL.
//
//   disk_crash_writer IMAGE SEED FIRST_SEQ MAX_OPS [CRASH_POINT]
//
// Opens IMAGE read-write through the library (open_disk: .vhdx, .vhd, anything else raw), then issues MAX_OPS random
// operations drawn from SEED (the same seed, the same operations): writes from one sector to a few blocks at
// random offsets (new blocks get allocated, BAT entries and the log change), discards of whole blocks and of
// ranges, and flushes. Every write's payload is stamped (crash_protocol.h) with sequence numbers counting from
// FIRST_SEQ. Records go to file descriptor 3: Ready once open, Write/Discard before each operation is
// issued, Flushed after a flush returns, Closed after close() returns (then it exits 0). Errors go to stderr
// (exit 1). With CRASH_POINT N > 0 it kills itself at the N-th call that changes a file, opening included
// (crash_points.h): the same arguments on the same image crash at the same place.
#include "support/errno_error.h"
#include "support/result.h"
#include "vm/disk/block_device.h"
#include "vm/disk/crash/crash_protocol.h"
#include "vm/disk/crash/writer/crash_points.h"
#include "vm/disk/disk_ops.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::vm::disk::crash {
namespace {

Result<uint64_t> parse_number(std::string_view text, const char* what)
{
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc {} || end != text.data() + text.size())
        return fail("{} '{}' is not a number", what, text);
    return v;
}

Result<void> report(RecordKind kind, uint64_t seq, uint64_t offset = 0, uint64_t length = 0)
{
    const Record r { kind, 0, seq, offset, length };
    for (;;) {
        const ssize_t n = ::write(report_fd, &r, sizeof(r));
        if (n == static_cast<ssize_t>(sizeof(r)))
            return {};
        if (n < 0 && errno == EINTR)
            continue;
        return fail("reporting to the parent: {}", n < 0 ? errno_text(errno) : "short write");
    }
}

class Writer {
public:
    Writer(BlockDevice& disk, uint64_t seed, uint64_t first_seq)
        : m_disk(disk)
        , m_rng(seed)
        , m_seq(first_seq)
        , m_sector(disk.sector_size())
        , m_sectors(disk.size() / disk.sector_size())
        , m_block(disk.info().block_size != 0 ? disk.info().block_size : uint32_t { 1 } << 20)
    {
    }

    Result<void> run(uint64_t max_ops)
    {
        TRY(report(RecordKind::Ready, m_seq));
        for (uint64_t i = 0; i < max_ops; ++i) {
            const uint64_t roll = m_rng.below(100);
            if (roll < 6)
                TRY(flush());
            else if (roll < 14)
                TRY(discard());
            else
                TRY(write());
        }
        TRY(m_disk.close());
        return report(RecordKind::Closed, m_seq - 1);
    }

private:
    // A length in sectors: mostly small, sometimes up to a few blocks.
    uint64_t pick_sectors()
    {
        const uint64_t per_block = m_block / m_sector;
        const uint64_t roll = m_rng.below(100);
        uint64_t n = 0;
        if (roll < 45)
            n = m_rng.between(1, std::max<uint64_t>(1, 8 * 512 / m_sector));
        else if (roll < 80)
            n = m_rng.between(1, std::max<uint64_t>(1, (256 << 10) / m_sector));
        else
            n = m_rng.between(1, 3 * per_block);
        return std::min(n, m_sectors);
    }

    Result<void> write()
    {
        const uint64_t sectors = pick_sectors();
        const uint64_t offset = m_rng.below(m_sectors - sectors + 1) * m_sector;
        const uint64_t length = sectors * m_sector;
        const uint64_t seq = m_seq++;
        m_buffer.resize(static_cast<size_t>(length));
        stamp_units(m_buffer, offset / unit_size, seq);
        TRY(report(RecordKind::Write, seq, offset, length));
        TRY_CTX(m_disk.write(offset, m_buffer), "write #{} at {:#x} length {:#x}", seq, offset, length);
        return {};
    }

    Result<void> discard()
    {
        uint64_t offset = 0;
        uint64_t length = 0;
        const uint64_t blocks = (m_disk.size() + m_block - 1) / m_block;
        if (m_rng.percent(50) && m_disk.size() >= m_block) {
            // Whole blocks: dynamic VHDX images give them back (BAT entries change through the log).
            const uint64_t n = m_rng.between(1, 2);
            offset = m_rng.below(blocks) * m_block;
            length = std::min<uint64_t>(n * m_block, m_disk.size() - offset);
        } else {
            const uint64_t sectors = std::min<uint64_t>(m_rng.between(1, (256 << 10) / m_sector), m_sectors);
            offset = m_rng.below(m_sectors - sectors + 1) * m_sector;
            length = sectors * m_sector;
        }
        const uint64_t seq = m_seq++;
        TRY(report(RecordKind::Discard, seq, offset, length));
        TRY_CTX(m_disk.discard(offset, length), "discard #{} at {:#x} length {:#x}", seq, offset, length);
        return {};
    }

    Result<void> flush()
    {
        TRY_CTX(m_disk.flush(), "flush after #{}", m_seq - 1);
        return report(RecordKind::Flushed, m_seq - 1);
    }

    BlockDevice& m_disk;
    Rng m_rng;
    uint64_t m_seq;
    uint64_t m_sector;
    uint64_t m_sectors;
    uint64_t m_block;
    std::vector<uint8_t> m_buffer;
};

Result<void> run(int argc, char** argv)
{
    if (argc != 5 && argc != 6)
        return fail("usage: disk_crash_writer IMAGE SEED FIRST_SEQ MAX_OPS [CRASH_POINT]");
    const std::string path = argv[1];
    const uint64_t seed = TRY(parse_number(argv[2], "seed"));
    const uint64_t first_seq = TRY(parse_number(argv[3], "first sequence number"));
    const uint64_t max_ops = TRY(parse_number(argv[4], "operation count"));
    const uint64_t crash_point = argc == 6 ? TRY(parse_number(argv[5], "crash point")) : 0;
    if (first_seq == 0)
        return fail("sequence numbers start at 1 (0 stands for zeroes)");
    arm_crash_point(crash_point, mix_seed(seed, crash_point), report_fd);
    auto disk = TRY(open_disk(path, false));
    Writer writer(*disk, seed, first_seq);
    return writer.run(max_ops);
}

} // namespace
} // namespace vmgen::vm::disk::crash

int main(int argc, char** argv)
{
    auto result = vmgen::vm::disk::crash::run(argc, argv);
    if (!result) {
        std::fprintf(stderr, "disk_crash_writer: %s\n", result.error().message().c_str());
        return 1;
    }
    return 0;
}
