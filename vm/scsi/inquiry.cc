#include "vm/scsi/inquiry.h"

#include "vm/scsi/scsi_request.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;

namespace {

// Copies `text` into a space-padded ASCII field.
template <size_t N> void put_ascii(char (&field)[N], const std::string& text)
{
    std::memset(field, ' ', N);
    std::memcpy(field, text.data(), std::min(N, text.size()));
}

std::string printable(std::string text, size_t limit)
{
    if (text.size() > limit)
        text.resize(limit);
    for (char& c : text) {
        if (c < 0x20 || c > 0x7e)
            c = '_';
    }
    return text;
}

std::string hex_id(const std::array<uint8_t, 16>& id)
{
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string text;
    for (const uint8_t byte : id) {
        text += digits[byte >> 4];
        text += digits[byte & 0x0f];
    }
    return text;
}

// Sets the page length of a VPD page assembled in `page` (header first).
void finish_vpd(std::vector<uint8_t>& page)
{
    wire::VpdHeader header {};
    std::memcpy(&header, page.data(), sizeof(header));
    header.page_length.set(static_cast<uint16_t>(page.size() - sizeof(header)));
    std::memcpy(page.data(), &header, sizeof(header));
}

std::vector<uint8_t> vpd_start(uint8_t peripheral, uint8_t page_code)
{
    std::vector<uint8_t> page;
    append_wire(page, wire::VpdHeader { .peripheral = peripheral, .page_code = page_code, .page_length = {} });
    return page;
}

} // namespace

LunIdentity normalized_identity(LunIdentity identity)
{
    identity.vendor = printable(std::move(identity.vendor), 8);
    identity.product = printable(std::move(identity.product), 16);
    identity.revision = printable(std::move(identity.revision), 4);
    identity.serial = identity.serial.empty() ? hex_id(identity.id) : printable(std::move(identity.serial), 252);
    return identity;
}

std::vector<uint8_t> standard_inquiry(
    uint8_t peripheral, bool removable, const LunIdentity& identity, std::span<const uint16_t> version_descriptors)
{
    wire::StandardInquiry data {};
    data.peripheral = peripheral;
    data.rmb = removable ? wire::inquiry_removable : 0;
    data.version = wire::inquiry_version_spc4;
    data.response_format = wire::inquiry_response_format_hisup;
    data.additional_length = sizeof(data) - offsetof(wire::StandardInquiry, flags5);
    data.flags7 = wire::inquiry_cmdque;
    put_ascii(data.vendor, identity.vendor);
    put_ascii(data.product, identity.product);
    put_ascii(data.revision, identity.revision);
    const size_t count = std::min(version_descriptors.size(), std::size(data.version_descriptors));
    for (size_t i = 0; i < count; ++i)
        data.version_descriptors[i].set(version_descriptors[i]);
    std::vector<uint8_t> out;
    append_wire(out, data);
    return out;
}

std::vector<uint8_t> vpd_supported_pages(uint8_t peripheral, std::span<const uint8_t> pages)
{
    std::vector<uint8_t> page = vpd_start(peripheral, wire::vpd::supported_pages);
    page.insert(page.end(), pages.begin(), pages.end());
    finish_vpd(page);
    return page;
}

std::vector<uint8_t> vpd_unit_serial_number(uint8_t peripheral, const LunIdentity& identity)
{
    std::vector<uint8_t> page = vpd_start(peripheral, wire::vpd::unit_serial_number);
    page.insert(page.end(), identity.serial.begin(), identity.serial.end());
    finish_vpd(page);
    return page;
}

std::vector<uint8_t> vpd_device_identification(uint8_t peripheral, const LunIdentity& identity)
{
    std::vector<uint8_t> page = vpd_start(peripheral, wire::vpd::device_identification);

    // NAA 3 (locally assigned): the top nibble is the NAA, the 60 bits after it come from the id.
    append_wire(page,
        wire::DesignatorHeader {
            .code_set = wire::code_set_binary, .type = wire::designator_naa, .reserved = 0, .length = 8 });
    page.push_back(static_cast<uint8_t>((wire::naa_locally_assigned << 4) | (identity.id[0] & 0x0f)));
    page.insert(page.end(), identity.id.begin() + 1, identity.id.begin() + 8);

    // T10 vendor ID: the 8-byte vendor field, then vendor-specific text (the whole id in hexadecimal).
    std::string t10 = identity.vendor.substr(0, 8);
    t10.resize(8, ' ');
    t10 += hex_id(identity.id);
    append_wire(page,
        wire::DesignatorHeader { .code_set = wire::code_set_ascii,
            .type = wire::designator_t10_vendor_id,
            .reserved = 0,
            .length = static_cast<uint8_t>(t10.size()) });
    page.insert(page.end(), t10.begin(), t10.end());
    finish_vpd(page);
    return page;
}

std::array<uint8_t, 8> encode_lun(uint16_t lun)
{
    std::array<uint8_t, 8> address {};
    if (lun < 256) {
        address[1] = static_cast<uint8_t>(lun);
    } else {
        address[0] = static_cast<uint8_t>(wire::lun_address_flat | ((lun >> 8) & 0x3f));
        address[1] = static_cast<uint8_t>(lun & 0xff);
    }
    return address;
}

ScsiOutcome report_luns(const ScsiCommand& command, DataBuffer& data, std::span<const uint16_t> luns)
{
    ScsiRequest request(command, data);
    if (request.opcode() != wire::opcode::report_luns || request.cdb_size() == 0)
        return sense::invalid_opcode();
    if (request.naca())
        return sense::invalid_field_in_cdb(11, 2);
    const auto cdb = request.cdb<wire::ReportLunsCdb>();
    const uint32_t allocation = cdb.allocation_length.get();
    if (allocation < wire::report_luns_min_allocation)
        return sense::invalid_field_in_cdb(6);
    std::vector<uint8_t> response(sizeof(wire::ReportLunsHeader));
    switch (cdb.select_report) {
    case 0x00: // all LUNs except well-known ones
    case 0x02: // all LUNs
        for (const uint16_t lun : luns) {
            if (lun >= 16384)
                continue;
            const auto address = encode_lun(lun);
            response.insert(response.end(), address.begin(), address.end());
        }
        break;
    case 0x01: // well-known LUNs only: we have none
        break;
    default:
        return sense::invalid_field_in_cdb(2);
    }
    wire::ReportLunsHeader header {};
    header.lun_list_length.set(static_cast<uint32_t>(response.size() - sizeof(header)));
    std::memcpy(response.data(), &header, sizeof(header));
    return request.respond(response, allocation);
}

ScsiOutcome inquiry_for_absent_lun(const ScsiCommand& command, DataBuffer& data)
{
    ScsiRequest request(command, data);
    if (request.opcode() != wire::opcode::inquiry || request.cdb_size() == 0)
        return sense::invalid_opcode();
    const auto cdb = request.cdb<wire::InquiryCdb>();
    if ((cdb.flags & wire::inquiry_evpd) != 0)
        return ScsiOutcome::check_condition(wire::sense_key::illegal_request, wire::asc::logical_unit_not_supported);
    if ((cdb.flags & wire::inquiry_cmddt) != 0)
        return sense::invalid_field_in_cdb(1, 1);
    if (cdb.page_code != 0)
        return sense::invalid_field_in_cdb(2);
    wire::StandardInquiry inquiry {};
    inquiry.peripheral = wire::peripheral_absent;
    inquiry.version = wire::inquiry_version_spc4;
    inquiry.response_format = wire::inquiry_response_format_hisup;
    inquiry.additional_length = wire::standard_inquiry_min_size - offsetof(wire::StandardInquiry, flags5);
    std::vector<uint8_t> response;
    append_wire(response, inquiry);
    response.resize(wire::standard_inquiry_min_size);
    return request.respond(response, cdb.allocation_length.get());
}

ScsiOutcome answer_inquiry(
    ScsiRequest& request, const InquiryProfile& profile, const LunIdentity& identity, const DeviceVpdPage& device_page)
{
    const auto cdb = request.cdb<wire::InquiryCdb>();
    if ((cdb.flags & wire::inquiry_cmddt) != 0)
        return sense::invalid_field_in_cdb(1, 1);
    const uint16_t allocation = cdb.allocation_length.get();
    if ((cdb.flags & wire::inquiry_evpd) == 0) {
        if (cdb.page_code != 0)
            return sense::invalid_field_in_cdb(2);
        return request.respond(
            standard_inquiry(profile.peripheral, profile.removable, identity, profile.version_descriptors), allocation);
    }
    switch (cdb.page_code) {
    case wire::vpd::supported_pages:
        return request.respond(vpd_supported_pages(profile.peripheral, profile.vpd_pages), allocation);
    case wire::vpd::unit_serial_number:
        return request.respond(vpd_unit_serial_number(profile.peripheral, identity), allocation);
    case wire::vpd::device_identification:
        return request.respond(vpd_device_identification(profile.peripheral, identity), allocation);
    default:
        break;
    }
    if (device_page) {
        if (auto page = device_page(cdb.page_code))
            return request.respond(*page, allocation);
    }
    return sense::invalid_field_in_cdb(2);
}

} // namespace vmgen::vm::scsi
