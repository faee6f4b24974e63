#include "vm/scsi/mode_sense.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;

ScsiOutcome mode_sense(ScsiRequest& request, const ModeSenseSource& source)
{
    const bool ten = request.opcode() == wire::opcode::mode_sense_10;
    uint8_t flags = 0;
    uint8_t page = 0;
    uint8_t subpage = 0;
    uint32_t allocation = 0;
    if (ten) {
        const auto cdb = request.cdb<wire::ModeSense10Cdb>();
        flags = cdb.flags;
        page = cdb.page;
        subpage = cdb.subpage;
        allocation = cdb.allocation_length.get();
    } else {
        const auto cdb = request.cdb<wire::ModeSense6Cdb>();
        flags = cdb.flags;
        page = cdb.page;
        subpage = cdb.subpage;
        allocation = cdb.allocation_length;
    }
    const auto control = static_cast<wire::PageControl>(page >> 6);
    const uint8_t code = page & 0x3f;
    if (control == wire::PageControl::Saved)
        return sense::saving_not_supported();
    // We have no subpages: subpage 0, or "all subpages" (0xff), which then means the page itself.
    if (subpage != 0 && subpage != wire::mode_subpage_all)
        return sense::invalid_field_in_cdb(3);
    const bool all = code == wire::mode_page_all;
    if (!all && std::find(source.pages.begin(), source.pages.end(), code) == source.pages.end())
        return sense::invalid_field_in_cdb(2, 5);

    std::vector<uint8_t> response(ten ? sizeof(wire::ModeHeader10) : sizeof(wire::ModeHeader6));
    size_t descriptor_length = 0;
    bool long_lba = false;
    if (source.block_descriptor && (flags & wire::mode_sense_dbd) == 0) {
        long_lba = ten && (flags & wire::mode_sense_llbaa) != 0;
        if (long_lba) {
            wire::LongBlockDescriptor descriptor {};
            descriptor.block_count.set(source.block_count);
            descriptor.block_length.set(source.block_length);
            append_wire(response, descriptor);
            descriptor_length = sizeof(descriptor);
        } else {
            wire::ShortBlockDescriptor descriptor {};
            descriptor.block_count.set(static_cast<uint32_t>(std::min<uint64_t>(source.block_count, UINT32_MAX)));
            descriptor.block_length.set(source.block_length & 0xffffff);
            append_wire(response, descriptor);
            descriptor_length = sizeof(descriptor);
        }
    }
    for (const uint8_t supported : source.pages) {
        if (all || supported == code)
            source.append_page(supported, control, response);
    }

    if (ten) {
        wire::ModeHeader10 header {};
        header.mode_data_length.set(static_cast<uint16_t>(response.size() - sizeof(header.mode_data_length)));
        header.medium_type = source.medium_type;
        header.device_specific = source.device_specific;
        header.flags = long_lba ? wire::mode_header_longlba : 0;
        header.block_descriptor_length.set(static_cast<uint16_t>(descriptor_length));
        std::memcpy(response.data(), &header, sizeof(header));
    } else {
        // Our pages are small: the 6-byte header's one-byte length always suffices (checked by the tests).
        wire::ModeHeader6 header {};
        header.mode_data_length = static_cast<uint8_t>(std::min<size_t>(response.size() - 1, 0xff));
        header.medium_type = source.medium_type;
        header.device_specific = source.device_specific;
        header.block_descriptor_length = static_cast<uint8_t>(descriptor_length);
        std::memcpy(response.data(), &header, sizeof(header));
    }
    return request.respond(response, allocation);
}

} // namespace vmgen::vm::scsi
