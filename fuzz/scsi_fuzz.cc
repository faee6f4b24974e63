// libFuzzer target: the SCSI LUNs (vm/scsi) fed hostile CDBs and parameter data, the way storvsp will feed them
// whatever a guest puts in a vmscsi_request.
//
// Input: [u8 setup] then commands until the input runs out, each
//   [u8 cdb length (mod 17)][cdb bytes][u8 flags][u16 transfer length, little-endian][Data-Out bytes ...]
// setup bits 0-1: the LUN (0: 256 KiB disk with 512-byte logical and 4096-byte physical sectors, 1: with 4096-byte
// sectors, 2: read-only with 512-byte sectors, no discard, 3: DVD drive); bit 2: the disk fails reads and writes at
// one byte offset each, and every flush; bit 3: the DVD starts with a medium.
// flags bits 0-1: direction (0 none, 1 in, 2 out, 3 in); bits 2-4: how the buffer is split into segments (a
// pattern of sizes for the first 16, then the rest; each segment its own heap allocation, so ASan sees any overrun);
// bits 5-7: a host action before the command for the DVD (1 insert, 2 remove, 3 request eject, 4 reset, 5 insert a
// DVD-sized medium), a capacity change for disks. The Data-Out bytes are taken from the input (zero-filled when it runs
// short). Checked after every command: no more bytes transferred than the buffer holds, CHECK CONDITION always with a
// sense key, GOOD never with one. A crash, sanitizer report or abort is a bug.
#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using namespace vmgen::vm::scsi;

// A medium that reads as zeroes (DVD-sized without the memory).
class ZeroMedium final : public vmgen::vm::disk::BlockDevice {
public:
    explicit ZeroMedium(uint64_t size)
    {
        m_info.virtual_size = size;
        m_info.logical_sector_size = 2048;
    }
    const vmgen::vm::disk::DiskInfo& info() const override { return m_info; }
    bool read_only() const override { return true; }
    vmgen::Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        if (offset % 2048 != 0 || out.size() % 2048 != 0 || offset > m_info.virtual_size
            || out.size() > m_info.virtual_size - offset)
            std::abort(); // the LUN must never ask for this
        std::memset(out.data(), 0, out.size());
        return {};
    }
    vmgen::Result<void> write(uint64_t, std::span<const uint8_t>) override { std::abort(); }
    vmgen::Result<void> flush() override { return {}; }
    vmgen::Result<void> discard(uint64_t, uint64_t) override { std::abort(); }

private:
    vmgen::vm::disk::DiskInfo m_info;
};

std::unique_ptr<MemoryDisk> cd_medium()
{
    static const std::vector<uint8_t> content = [] {
        std::vector<uint8_t> bytes(64 * 2048);
        for (size_t i = 0; i < bytes.size(); ++i)
            bytes[i] = static_cast<uint8_t>(i * 7);
        return bytes;
    }();
    auto medium = std::make_unique<MemoryDisk>(content.size(), 512, 0, true);
    std::memcpy(medium->bytes().data(), content.data(), content.size());
    return medium;
}

class Input {
public:
    Input(const uint8_t* data, size_t size)
        : m_data(data)
        , m_size(size)
    {
    }
    bool empty() const { return m_pos >= m_size; }
    uint8_t byte() { return m_pos < m_size ? m_data[m_pos++] : 0; }
    size_t take(uint8_t* out, size_t n)
    {
        const size_t count = std::min(n, m_size - std::min(m_pos, m_size));
        std::memcpy(out, m_data + m_pos, count);
        m_pos += count;
        return count;
    }

private:
    const uint8_t* m_data;
    size_t m_size;
    size_t m_pos = 0;
};

constexpr size_t segment_patterns[8][4] = {
    { 0, 0, 0, 0 }, // one segment
    { 4096, 4096, 4096, 4096 },
    { 512, 512, 512, 512 },
    { 1, 7, 500, 4095 },
    { 3584, 4096, 512, 4096 },
    { 2048, 1, 2047, 4096 },
    { 13, 13, 13, 13 },
    { 65536, 1, 65536, 1 },
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    Input input(data, size);
    const uint8_t setup = input.byte();
    const unsigned kind = setup & 3;
    const bool failures = (setup & 4) != 0;

    MemoryDisk* disk = nullptr;
    std::unique_ptr<ScsiLun> lun;
    ScsiDisk* scsi_disk = nullptr;
    ScsiDvd* dvd = nullptr;
    if (kind == 3) {
        ScsiDvdOptions options;
        options.on_guest_eject = [] {};
        auto drive = std::make_unique<ScsiDvd>(std::move(options));
        if ((setup & 8) != 0 && !drive->change_media(cd_medium()))
            std::abort();
        dvd = drive.get();
        lun = std::move(drive);
    } else {
        const uint32_t sector = kind == 1 ? 4096 : 512;
        auto memory = std::make_unique<MemoryDisk>(256 << 10, sector, kind == 0 ? 4096 : 0);
        if (failures) {
            memory->fail_reads_at(64 * 1024);
            memory->fail_writes_at(128 * 1024);
            memory->fail_flush(true);
        }
        disk = memory.get();
        ScsiDiskOptions options;
        options.max_transfer_bytes = 128 << 10;
        options.max_unmap_bytes = 256 << 10;
        options.max_unmap_descriptors = 8;
        options.read_only = kind == 2;
        options.discard = kind != 2;
        auto created = ScsiDisk::create(std::move(memory), options);
        if (!created)
            std::abort();
        scsi_disk = created->get();
        lun = std::move(*created);
    }

    while (!input.empty()) {
        const uint8_t cdb_length = input.byte() % 17;
        uint8_t cdb[16] = {};
        input.take(cdb, cdb_length);
        const uint8_t flags = input.byte();
        const uint32_t transfer = input.byte() | uint32_t { input.byte() } << 8;
        static constexpr DataDirection directions[4]
            = { DataDirection::None, DataDirection::In, DataDirection::Out, DataDirection::In };
        const DataDirection direction = directions[flags & 3];

        const unsigned action = flags >> 5;
        if (dvd) {
            switch (action) {
            case 1:
                if (!dvd->change_media(cd_medium()))
                    std::abort();
                break;
            case 2:
                if (!dvd->change_media(nullptr))
                    std::abort();
                break;
            case 3:
                (void)dvd->request_eject();
                break;
            case 4:
                dvd->reset();
                break;
            case 5:
                if (!dvd->change_media(std::make_unique<ZeroMedium>(1ull << 30)))
                    std::abort();
                break;
            default:
                break;
            }
        } else if (action == 7 && disk && scsi_disk) {
            disk->set_size(disk->size() == (256u << 10) ? (128u << 10) : (256u << 10));
            scsi_disk->notify_capacity_changed();
        }

        // The buffer: segments of their own allocations, filled with Data-Out bytes from the input.
        std::vector<std::pair<std::unique_ptr<uint8_t[]>, size_t>> pieces;
        std::vector<std::span<uint8_t>> spans;
        const size_t* pattern = segment_patterns[(flags >> 2) & 7];
        for (size_t left = transfer, i = 0; left > 0; ++i) {
            // The pattern repeats for the first 16 segments; the rest of the buffer is one more.
            const size_t want = pattern[i % 4] == 0 || i >= 16 ? left : pattern[i % 4];
            const size_t n = std::min(want, left);
            pieces.emplace_back(std::make_unique_for_overwrite<uint8_t[]>(n), n);
            std::memset(pieces.back().first.get(), 0xee, n);
            left -= n;
        }
        for (auto& [piece, n] : pieces) {
            if (direction == DataDirection::Out)
                input.take(piece.get(), n);
            spans.emplace_back(piece.get(), n);
        }
        SpanDataBuffer buffer(std::move(spans));

        const auto command = ScsiCommand::make(std::span<const uint8_t>(cdb, cdb_length), direction, transfer);
        const ScsiOutcome outcome = lun->execute(command, buffer);
        if (outcome.transferred > transfer)
            std::abort();
        if (outcome.status == ScsiStatus::CheckCondition
            && (outcome.sense.key() == 0 || (outcome.sense.bytes[0] & 0x7f) != 0x70))
            std::abort();
        if (outcome.status == ScsiStatus::Good && outcome.buffer_too_small)
            std::abort();
    }
    return 0;
}
