#include "vm/disk/disk_ops.h"

#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhd/vhd_disk.h"
#include "vm/disk/vhdx/vhdx.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace vmgen::vm::disk {

namespace {

constexpr uint64_t chunk_bytes = 4ull << 20;   // one read or write of a copy
constexpr uint64_t window_bytes = 1ull << 32;  // extents are asked for this much at a time
constexpr size_t pipeline_depth = 4;           // chunks in flight between the reader and the writer
constexpr uint64_t zero_granule = 64ull << 10;  // zero runs this long (aligned) inside a chunk are not written
constexpr int max_check_depth = 64;            // parents below a child checked by check_disk

bool exists(const std::string& path)
{
    std::error_code ec;
    return std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found;
}

uint64_t allocated_bytes(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

bool all_zero(std::span<const uint8_t> data)
{
    // Word at a time; the buffers are heap blocks, 4 KiB-multiple lengths.
    size_t i = 0;
    for (; i + 64 <= data.size(); i += 64) {
        uint64_t acc = 0;
        for (size_t k = 0; k < 64; k += 8) {
            uint64_t word;
            std::memcpy(&word, data.data() + i + k, sizeof(word));
            acc |= word;
        }
        if (acc != 0)
            return false;
    }
    for (; i < data.size(); ++i) {
        if (data[i] != 0)
            return false;
    }
    return true;
}

// Calls `visit` for every extent of the whole device, a window at a time.
template <typename Visit>
Result<void> for_each_extent(BlockDevice& device, Visit&& visit)
{
    const uint64_t size = device.size();
    for (uint64_t pos = 0; pos < size;) {
        const uint64_t length = std::min(window_bytes, size - pos);
        const auto extents = TRY(device.extents(pos, length));
        uint64_t expected = pos;
        for (const Extent& e : extents) {
            if (e.offset != expected || e.length == 0 || e.length > pos + length - e.offset)
                return fail("the image described its ranges inconsistently at offset {}", expected);
            TRY(visit(e));
            expected += e.length;
        }
        if (expected != pos + length)
            return fail("the image described its ranges inconsistently at offset {}", expected);
        pos += length;
    }
    return {};
}

// A range of a chunk's buffer to write, relative to the chunk.
struct Run {
    uint64_t begin = 0;
    uint64_t end = 0;
};

// One chunk on its way from the reader to the writer.
struct Chunk {
    uint64_t offset = 0;
    uint64_t length = 0;
    std::vector<Run> runs; // what to write; empty: nothing (zeroes or not stored)
    std::vector<uint8_t> buffer;
};

// The non-zero runs of `data`, judged zero_granule by zero_granule (granules aligned to the disk offset `offset`).
std::vector<Run> nonzero_runs(std::span<const uint8_t> data, uint64_t offset)
{
    std::vector<Run> runs;
    for (uint64_t pos = 0; pos < data.size();) {
        const uint64_t end = std::min<uint64_t>(data.size(), (offset + pos) / zero_granule * zero_granule + zero_granule - offset);
        if (!all_zero(data.subspan(static_cast<size_t>(pos), static_cast<size_t>(end - pos)))) {
            if (!runs.empty() && runs.back().end == pos)
                runs.back().end = end;
            else
                runs.push_back({pos, end});
        }
        pos = end;
    }
    return runs;
}

// A bounded hand-over between one producer and one consumer; either side can abort it.
class ChunkQueue {
public:
    void push(Chunk chunk)
    {
        std::unique_lock lock(m_mutex);
        m_ready.push_back(std::move(chunk));
        m_changed.notify_all();
    }
    // Waits for a chunk; nullopt once the producer finished or either side aborted.
    std::optional<Chunk> pop()
    {
        std::unique_lock lock(m_mutex);
        m_changed.wait(lock, [&] { return !m_ready.empty() || m_done || m_aborted; });
        if (m_aborted || m_ready.empty())
            return std::nullopt;
        Chunk chunk = std::move(m_ready.front());
        m_ready.pop_front();
        return chunk;
    }
    // A buffer for the producer: a recycled one, or a new one while fewer than pipeline_depth exist.
    std::optional<std::vector<uint8_t>> take_buffer()
    {
        std::unique_lock lock(m_mutex);
        m_changed.wait(lock, [&] { return !m_free.empty() || m_buffers < pipeline_depth || m_aborted; });
        if (m_aborted)
            return std::nullopt;
        if (!m_free.empty()) {
            auto buffer = std::move(m_free.back());
            m_free.pop_back();
            return buffer;
        }
        ++m_buffers;
        return std::vector<uint8_t>(chunk_bytes);
    }
    void give_back(std::vector<uint8_t> buffer)
    {
        std::unique_lock lock(m_mutex);
        m_free.push_back(std::move(buffer));
        m_changed.notify_all();
    }
    void finish()
    {
        std::unique_lock lock(m_mutex);
        m_done = true;
        m_changed.notify_all();
    }
    void abort()
    {
        std::unique_lock lock(m_mutex);
        m_aborted = true;
        m_changed.notify_all();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<Chunk> m_ready;
    std::vector<std::vector<uint8_t>> m_free;
    size_t m_buffers = 0;
    bool m_done = false;
    bool m_aborted = false;
};

// Copies from `source` to `destination` the ranges `want` selects, chunk by chunk, reading on a second thread.
// All-zero chunks are skipped when `skip_zero` (the destination already reads zeroes there).
template <typename Want>
Result<void> copy_ranges(BlockDevice& source, BlockDevice& destination, Want&& want, bool skip_zero,
                         const ProgressFn& progress)
{
    ChunkQueue queue;
    Result<void> reader_result;
    std::thread reader([&] {
        reader_result = for_each_extent(source, [&](const Extent& e) -> Result<void> {
            if (!want(e)) {
                queue.push(Chunk{e.offset, e.length, {}, {}});
                return {};
            }
            for (uint64_t pos = e.offset; pos < e.offset + e.length;) {
                const uint64_t length = std::min(chunk_bytes, e.offset + e.length - pos);
                auto buffer = queue.take_buffer();
                if (!buffer)
                    return fail("stopped");
                const std::span<uint8_t> data(buffer->data(), static_cast<size_t>(length));
                TRY_CTX(source.read(pos, data), "reading {} bytes at offset {}", length, pos);
                auto runs = skip_zero ? nonzero_runs(data, pos) : std::vector<Run>{{0, length}};
                queue.push(Chunk{pos, length, std::move(runs), std::move(*buffer)});
                pos += length;
            }
            return {};
        });
        if (reader_result)
            queue.finish();
        else
            queue.abort();
    });

    Result<void> writer_result;
    uint64_t done = 0;
    while (auto chunk = queue.pop()) {
        for (const Run& run : chunk->runs) {
            const uint64_t at = chunk->offset + run.begin;
            auto written = destination.write(at, std::span<const uint8_t>(chunk->buffer.data() + run.begin,
                                                                            static_cast<size_t>(run.end - run.begin)));
            if (!written) {
                writer_result
                    = fail(written.error().with_context(fmt::format("writing {} bytes at offset {}", run.end - run.begin, at)));
                break;
            }
        }
        if (!writer_result) {
            queue.abort();
            break;
        }
        if (!chunk->buffer.empty())
            queue.give_back(std::move(chunk->buffer));
        done += chunk->length;
        if (progress)
            progress(done, source.size());
    }
    reader.join();
    TRY(writer_result);
    return reader_result;
}

} // namespace

DiskFormat format_from_path(const std::string& path)
{
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    if (ext == ".vhd")
        return DiskFormat::Vhd;
    if (ext == ".vhdx")
        return DiskFormat::Vhdx;
    return DiskFormat::Raw;
}

std::string_view format_name(DiskFormat format)
{
    switch (format) {
    case DiskFormat::Vhd:
        return "VHD";
    case DiskFormat::Vhdx:
        return "VHDX";
    case DiskFormat::Raw:
        break;
    }
    return "Raw";
}

std::string_view type_name(DiskType type)
{
    switch (type) {
    case DiskType::Dynamic:
        return "Dynamic";
    case DiskType::Differencing:
        return "Differencing";
    case DiskType::Fixed:
        break;
    }
    return "Fixed";
}

Result<std::unique_ptr<BlockDevice>> open_disk(const std::string& path, bool read_only)
{
    if (!exists(path))
        return fail("{}: no such file", path);
    switch (format_from_path(path)) {
    case DiskFormat::Vhd:
        return open_vhd(path, read_only);
    case DiskFormat::Vhdx:
        return open_vhdx(path, read_only);
    case DiskFormat::Raw:
        break;
    }
    return open_raw(path, read_only);
}

Result<void> create_disk(const std::string& path, const CreateOptions& options)
{
    if (exists(path))
        return fail("{} already exists", path);
    const DiskFormat format = format_from_path(path);
    Result<void> created;
    switch (format) {
    case DiskFormat::Vhd:
        if (options.logical_sector_size != 512)
            return fail("VHD images have 512-byte sectors");
        if (options.type == DiskType::Differencing)
            created = create_vhd_differencing(path, options.parent);
        else if (options.block_size != 0)
            created = create_vhd(path, options.size, options.type, options.block_size);
        else
            created = create_vhd(path, options.size, options.type);
        break;
    case DiskFormat::Vhdx:
        if (options.type == DiskType::Differencing)
            created = create_vhdx_differencing(path, options.parent);
        else
            created = create_vhdx(path, options.size, options.type, options.block_size, options.logical_sector_size);
        break;
    case DiskFormat::Raw:
        if (options.type == DiskType::Differencing)
            return fail("raw images cannot be differencing disks");
        if (options.logical_sector_size != 512)
            return fail("raw images have 512-byte sectors");
        created = create_raw(path, options.size);
        break;
    }
    if (!created) {
        // The formats remove what they made; make sure nothing is left behind either way.
        std::error_code ec;
        if (exists(path))
            std::filesystem::remove(path, ec);
        return created;
    }
    return {};
}

Result<void> convert_disk(const std::string& source, const std::string& destination, const ConvertOptions& options,
                          const ProgressFn& progress)
{
    if (exists(destination))
        return fail("{} already exists", destination);
    auto src = TRY_CTX(open_disk(source, true), "opening {}", source);
    const DiskInfo& info = src->info();

    CreateOptions create;
    create.size = info.virtual_size;
    create.block_size = options.block_size;
    create.type = options.type.value_or(info.type == DiskType::Fixed ? DiskType::Fixed : DiskType::Dynamic);
    if (create.type == DiskType::Differencing)
        return fail("convert-vhd makes fixed or dynamic disks, not differencing ones");
    const DiskFormat format = format_from_path(destination);
    // VHD and raw images always address 512-byte sectors; VHDX keeps the source's sector size unless told.
    create.logical_sector_size = format == DiskFormat::Vhdx ? options.logical_sector_size.value_or(info.logical_sector_size)
                                                            : options.logical_sector_size.value_or(512);
    TRY_CTX(create_disk(destination, create), "creating {}", destination);

    auto copied = [&]() -> Result<void> {
        auto dst = TRY_CTX(open_disk(destination, false), "opening {}", destination);
        if (dst->size() != src->size())
            return fail("{} holds {} bytes, not the {} of {}", destination, dst->size(), src->size(), source);
        // A fresh image reads as zeroes everywhere, so neither unstored ranges nor zero chunks need writing.
        TRY(copy_ranges(
            *src, *dst, [](const Extent& e) { return e.kind != ExtentKind::Zero; }, true, progress));
        return dst->close();
    }();
    if (!copied) {
        std::error_code ec;
        std::filesystem::remove(destination, ec);
        return copied;
    }
    return {};
}

Result<std::string> merge_disk(const std::string& child, const ProgressFn& progress)
{
    auto source = TRY_CTX(open_disk(child, true), "opening {}", child);
    if (source->info().type != DiskType::Differencing)
        return fail("{} is not a differencing disk", child);
    const std::string parent_path = source->info().parent_path;
    auto parent = TRY_CTX(open_disk(parent_path, false), "opening the parent {}", parent_path);
    if (parent->size() != source->size())
        return fail("the parent {} holds {} bytes, the child {}", parent_path, parent->size(), source->size());
    // Only what the child stores; a chunk of zeroes stored in the child must reach the parent too.
    TRY(copy_ranges(
        *source, *parent, [](const Extent& e) { return e.kind == ExtentKind::Data; }, false, progress));
    TRY_CTX(parent->close(), "flushing {}", parent_path);
    parent.reset();
    source.reset();
    std::error_code ec;
    if (!std::filesystem::remove(child, ec) || ec)
        return fail("merged into {} but could not delete {}: {}", parent_path, child,
                    ec ? ec.message() : std::string("not found"));
    return parent_path;
}

Result<void> resize_disk(const std::string& path, uint64_t new_size, bool allow_data_loss)
{
    auto device = TRY_CTX(open_disk(path, false), "opening {}", path);
    const uint64_t sector = device->sector_size();
    if (new_size == 0 || new_size % sector != 0)
        return fail("the new size must be a non-zero multiple of the {}-byte sector", sector);
    if (new_size < device->size() && !allow_data_loss) {
        uint64_t stored = 0;
        for (uint64_t pos = new_size; pos < device->size();) {
            const uint64_t length = std::min(window_bytes, device->size() - pos);
            for (const Extent& e : TRY(device->extents(pos, length))) {
                if (e.kind != ExtentKind::Zero)
                    stored += e.length;
            }
            pos += length;
        }
        if (stored != 0)
            return fail("shrinking {} to {} bytes would drop {} bytes of stored data past the new end", path, new_size,
                        stored);
    }
    TRY_CTX(device->resize(new_size), "resizing {}", path);
    return device->close();
}

Result<OptimizeReport> optimize_disk(const std::string& path, const ProgressFn& progress)
{
    auto device = TRY_CTX(open_disk(path, false), "opening {}", path);
    const DiskInfo& info = device->info();
    OptimizeReport report;
    std::error_code ec;
    report.file_size_before = std::filesystem::file_size(path, ec);
    report.allocated_before = allocated_bytes(path);
    const bool scan = info.format == DiskFormat::Raw || info.type == DiskType::Dynamic;
    if (scan) {
        const uint64_t granule = info.block_size != 0 ? info.block_size : zero_granule;
        std::vector<uint8_t> buffer;
        uint64_t done = 0;
        auto visit = [&](const Extent& e) -> Result<void> {
            if (e.kind == ExtentKind::Data) {
                // Whole granules only: a partial one at either end of the extent may share a block with data.
                // The disk's last granule may be short.
                uint64_t pos = (e.offset + granule - 1) / granule * granule;
                const uint64_t extent_end = e.offset + e.length;
                const uint64_t end = extent_end == device->size() ? extent_end : extent_end / granule * granule;
                while (pos < end) {
                    const uint64_t length = std::min(granule, end - pos);
                    buffer.resize(static_cast<size_t>(length));
                    TRY_CTX(device->read(pos, buffer), "reading {} bytes at offset {}", length, pos);
                    if (all_zero(buffer)) {
                        TRY_CTX(device->discard(pos, length), "discarding {} bytes at offset {}", length, pos);
                        report.zero_bytes_released += length;
                    }
                    pos += length;
                    if (progress)
                        progress(pos, device->size());
                }
            }
            done += e.length;
            if (progress)
                progress(done, device->size());
            return {};
        };
        TRY(for_each_extent(*device, visit));
    }
    TRY_CTX(device->compact(), "compacting {}", path);
    TRY_CTX(device->flush(), "flushing {}", path);
    TRY(device->close());
    device.reset();
    report.file_size_after = std::filesystem::file_size(path, ec);
    report.allocated_after = allocated_bytes(path);
    return report;
}

namespace {

Result<void> check_one(const std::string& path, CheckReport& report, const ProgressFn& progress, int depth)
{
    auto device = TRY(open_disk(path, true));
    std::vector<uint8_t> buffer;
    uint64_t done = 0;
    auto visit = [&](const Extent& e) -> Result<void> {
        switch (e.kind) {
        case ExtentKind::Zero:
            report.zero_bytes += depth == 0 ? e.length : 0;
            break;
        case ExtentKind::Parent:
            report.parent_bytes += depth == 0 ? e.length : 0;
            break;
        case ExtentKind::Data:
            report.data_bytes += depth == 0 ? e.length : 0;
            for (uint64_t pos = e.offset; pos < e.offset + e.length;) {
                const uint64_t length = std::min(chunk_bytes, e.offset + e.length - pos);
                buffer.resize(static_cast<size_t>(length));
                TRY_CTX(device->read(pos, buffer), "reading {} bytes at offset {}", length, pos);
                pos += length;
                if (progress && depth == 0)
                    progress(done + (pos - e.offset), device->size());
            }
            break;
        }
        done += e.length;
        if (progress && depth == 0)
            progress(done, device->size());
        return {};
    };
    TRY(for_each_extent(*device, visit));
    if (device->info().type == DiskType::Differencing) {
        if (depth >= max_check_depth)
            return fail("the parent chain is deeper than {}", max_check_depth);
        const std::string parent = device->info().parent_path;
        device.reset();
        TRY_CTX(check_one(parent, report, progress, depth + 1), "parent {}", parent);
    }
    return {};
}

} // namespace

Result<CheckReport> check_disk(const std::string& path, const ProgressFn& progress)
{
    CheckReport report;
    TRY(check_one(path, report, progress, 0));
    return report;
}

} // namespace vmgen::vm::disk
