#include "vm/disk/raw/raw_disk.h"

#include "support/errno_error.h"
#include "support/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace vmgen::vm::disk {

Result<void> pread_full(int fd, std::span<uint8_t> out, uint64_t offset)
{
    size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("reading {} bytes at {}", out.size() - done, offset + done));
        }
        if (n == 0)
            return fail("reading {} bytes at {}: unexpected end of file", out.size() - done, offset + done);
        done += static_cast<size_t>(n);
    }
    return {};
}

Result<void> pwrite_full(int fd, std::span<const uint8_t> in, uint64_t offset)
{
    size_t done = 0;
    while (done < in.size()) {
        const ssize_t n = ::pwrite(fd, in.data() + done, in.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("writing {} bytes at {}", in.size() - done, offset + done));
        }
        if (n == 0)
            return fail("writing {} bytes at {}: no progress", in.size() - done, offset + done);
        done += static_cast<size_t>(n);
    }
    return {};
}

Result<bool> pread_nowait(int fd, std::span<uint8_t> out, uint64_t offset)
{
    size_t done = 0;
    while (done < out.size()) {
        iovec iov {out.data() + done, out.size() - done};
        const ssize_t n = ::preadv2(fd, &iov, 1, static_cast<off_t>(offset + done), RWF_NOWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EOPNOTSUPP)
                return false;
            return errno_failure(fmt::format("reading {} bytes at {}", out.size() - done, offset + done));
        }
        if (n == 0)
            return fail("reading {} bytes at {}: unexpected end of file", out.size() - done, offset + done);
        // A short read with RWF_NOWAIT means the rest is not cached: the blocking path reads it.
        if (static_cast<size_t>(n) < out.size() - done)
            return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

Result<bool> pwrite_nowait(int fd, std::span<const uint8_t> in, uint64_t offset)
{
    size_t done = 0;
    bool plain = false; // the file system refused RWF_NOWAIT for buffered writes
    while (done < in.size()) {
        iovec iov {const_cast<uint8_t*>(in.data() + done), in.size() - done};
        const ssize_t n = ::pwritev2(fd, &iov, 1, static_cast<off_t>(offset + done), plain ? 0 : RWF_NOWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EOPNOTSUPP && !plain) {
                plain = true;
                continue;
            }
            if (errno == EAGAIN)
                return false;
            return errno_failure(fmt::format("writing {} bytes at {}", in.size() - done, offset + done));
        }
        if (n == 0)
            return fail("writing {} bytes at {}: no progress", in.size() - done, offset + done);
        done += static_cast<size_t>(n);
    }
    return true;
}

Result<void> check_request(uint64_t offset, uint64_t length, uint64_t size, uint32_t sector)
{
    if (offset % sector != 0 || length % sector != 0)
        return fail("request at {} of {} bytes is not aligned to the {}-byte sector", offset, length, sector);
    if (offset > size || length > size - offset)
        return fail("request at {} of {} bytes is past the end of the {}-byte disk", offset, length, size);
    return {};
}

namespace {

constexpr uint64_t zero_chunk = 1024 * 1024;

class RawDisk final : public BlockDevice {
public:
    RawDisk(UniqueFd fd, DiskInfo info, bool read_only, bool block_device)
        : m_fd(std::move(fd))
        , m_info(std::move(info))
        , m_read_only(read_only)
        , m_block_device(block_device)
    {
    }

    const DiskInfo& info() const override { return m_info; }
    bool read_only() const override { return m_read_only; }

    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        TRY(check_request(offset, out.size(), m_info.virtual_size, m_info.logical_sector_size));
        return pread_full(m_fd.get(), out, offset);
    }

    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override
    {
        if (m_read_only)
            return fail("write to a read-only disk");
        TRY(check_request(offset, in.size(), m_info.virtual_size, m_info.logical_sector_size));
        return pwrite_full(m_fd.get(), in, offset);
    }

    Result<bool> read_nowait(uint64_t offset, std::span<uint8_t> out) override
    {
        TRY(check_request(offset, out.size(), m_info.virtual_size, m_info.logical_sector_size));
        return pread_nowait(m_fd.get(), out, offset);
    }

    Result<bool> write_nowait(uint64_t offset, std::span<const uint8_t> in) override
    {
        if (m_read_only)
            return fail("write to a read-only disk");
        TRY(check_request(offset, in.size(), m_info.virtual_size, m_info.logical_sector_size));
        return pwrite_nowait(m_fd.get(), in, offset);
    }

    Result<void> flush() override
    {
        if (m_read_only)
            return {};
        while (::fdatasync(m_fd.get()) != 0) {
            if (errno != EINTR)
                return errno_failure("fdatasync");
        }
        return {};
    }

    Result<void> discard(uint64_t offset, uint64_t length) override
    {
        if (m_read_only)
            return fail("discard on a read-only disk");
        TRY(check_request(offset, length, m_info.virtual_size, m_info.logical_sector_size));
        if (length == 0)
            return {};
        if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(length))
            == 0)
            return {};
        const int err = errno;
        if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL)
            return errno_failure("fallocate(PUNCH_HOLE)", err);
        const std::vector<uint8_t> zeroes(std::min(length, zero_chunk), 0);
        for (uint64_t done = 0; done < length;) {
            const uint64_t n = std::min<uint64_t>(length - done, zeroes.size());
            TRY(pwrite_full(m_fd.get(), std::span(zeroes).first(n), offset + done));
            done += n;
        }
        return {};
    }

    // Data where the file has data, Zero over its holes (SEEK_DATA/SEEK_HOLE). A filesystem without them
    // (EINVAL) is all Data. Hole edges are filesystem blocks; an edge that is not sector-aligned widens the
    // Data side, so a Zero extent is always a hole.
    Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override
    {
        const uint32_t sector = m_info.logical_sector_size;
        TRY(check_request(offset, length, m_info.virtual_size, sector));
        std::vector<Extent> out;
        const uint64_t end = offset + length;
        uint64_t pos = offset;
        while (pos < end) {
            const off_t data = ::lseek(m_fd.get(), static_cast<off_t>(pos), SEEK_DATA);
            if (data < 0) {
                const int err = errno;
                if (err == ENXIO) { // no data from pos to the end of the file
                    append_extent(out, { pos, end - pos, ExtentKind::Zero });
                    break;
                }
                if (err == EINVAL || err == EOPNOTSUPP) { // holes not reported here
                    append_extent(out, { pos, end - pos, ExtentKind::Data });
                    break;
                }
                return errno_failure(fmt::format("lseek(SEEK_DATA, {})", pos), err);
            }
            const uint64_t data_start = std::min(static_cast<uint64_t>(data) / sector * sector, end);
            append_extent(out, { pos, data_start - pos, ExtentKind::Zero });
            if (data_start == end)
                break;
            const off_t hole = ::lseek(m_fd.get(), data, SEEK_HOLE);
            if (hole < 0)
                return errno_failure(fmt::format("lseek(SEEK_HOLE, {})", data));
            // A hole at `data` itself (the file changed under us) still moves on by a sector.
            const uint64_t hole_start = std::min(
                std::max((static_cast<uint64_t>(hole) + sector - 1) / sector * sector, data_start + sector), end);
            append_extent(out, { data_start, hole_start - data_start, ExtentKind::Data });
            pos = hole_start;
        }
        return out;
    }

    // ftruncate: growing adds a hole (reads as zeroes), shrinking drops the tail. Block devices have their
    // own size.
    Result<void> resize(uint64_t new_size) override
    {
        if (m_read_only)
            return fail("resize of a read-only disk");
        if (m_block_device)
            return fail("a block device cannot be resized");
        if (new_size == 0 || new_size % m_info.logical_sector_size != 0 || new_size > static_cast<uint64_t>(INT64_MAX))
            return fail("new size {} is not a non-zero multiple of {} bytes", new_size, m_info.logical_sector_size);
        if (::ftruncate(m_fd.get(), static_cast<off_t>(new_size)) != 0)
            return errno_failure(fmt::format("resizing to {} bytes", new_size));
        while (::fdatasync(m_fd.get()) != 0) {
            if (errno != EINTR)
                return errno_failure("fdatasync");
        }
        m_info.virtual_size = new_size;
        m_info.file_size = new_size;
        return {};
    }

private:
    UniqueFd m_fd;
    DiskInfo m_info;
    bool m_read_only;
    bool m_block_device;
};

} // namespace

Result<std::unique_ptr<BlockDevice>> open_raw(const std::string& path, bool read_only)
{
    UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", path));
    struct stat st { };
    if (::fstat(fd.get(), &st) != 0)
        return errno_failure(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return fail("{}: not a regular file or block device", path);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode)) {
        const off_t end = ::lseek(fd.get(), 0, SEEK_END);
        if (end < 0)
            return errno_failure(fmt::format("sizing {}", path));
        size = static_cast<uint64_t>(end);
    }
    if (size == 0 || size % 512 != 0)
        return fail("{}: size {} is not a non-zero multiple of 512 bytes", path, size);
    DiskInfo info;
    info.format = DiskFormat::Raw;
    info.type = DiskType::Fixed;
    info.virtual_size = size;
    info.file_size = size;
    return std::unique_ptr<BlockDevice>(
        std::make_unique<RawDisk>(std::move(fd), std::move(info), read_only, S_ISBLK(st.st_mode)));
}

Result<void> create_raw(const std::string& path, uint64_t size)
{
    if (size == 0 || size % 512 != 0)
        return fail("creating {}: size {} is not a non-zero multiple of 512 bytes", path, size);
    if (size > static_cast<uint64_t>(INT64_MAX))
        return fail("creating {}: size {} is too large", path, size);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("creating {}", path));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        const int err = errno;
        ::unlink(path.c_str());
        return errno_failure(fmt::format("sizing {} to {} bytes", path, size), err);
    }
    if (::fsync(fd.get()) != 0)
        return errno_failure(fmt::format("syncing {}", path));
    return {};
}

} // namespace vmgen::vm::disk
