#include "vm/disk/block_device.h"

#include "vm/disk/raw/raw_disk.h"

namespace vmgen::vm::disk {

void append_extent(std::vector<Extent>& out, Extent e)
{
    if (e.length == 0)
        return;
    if (!out.empty() && out.back().kind == e.kind && out.back().offset + out.back().length == e.offset) {
        out.back().length += e.length;
        return;
    }
    out.push_back(e);
}

Result<std::vector<Extent>> BlockDevice::extents(uint64_t offset, uint64_t length)
{
    TRY(check_request(offset, length, size(), sector_size()));
    std::vector<Extent> out;
    append_extent(out, {offset, length, ExtentKind::Data});
    return out;
}

Result<void> BlockDevice::resize(uint64_t /*new_size*/)
{
    return fail("this image cannot be resized");
}

Result<bool> BlockDevice::read_nowait(uint64_t offset, std::span<uint8_t> out)
{
    (void)offset;
    (void)out;
    return false;
}

Result<bool> BlockDevice::write_nowait(uint64_t offset, std::span<const uint8_t> in)
{
    (void)offset;
    (void)in;
    return false;
}

} // namespace vmgen::vm::disk
