// ScsiDisk: INQUIRY and its VPD pages, REQUEST SENSE, READ CAPACITY, MODE SENSE and MODE SELECT.
#include "protocols/scsi/sbc.h"
#include "vm/scsi/mode_sense.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_request.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;
namespace op = protocols::scsi::opcode;

namespace {

constexpr std::array<uint16_t, 3> disk_versions
    = { wire::version_descriptor::sam5, wire::version_descriptor::spc4, wire::version_descriptor::sbc3 };
constexpr std::array<uint8_t, 6> disk_vpd_pages
    = { wire::vpd::supported_pages, wire::vpd::unit_serial_number, wire::vpd::device_identification,
          wire::vpd::block_limits, wire::vpd::block_device_characteristics, wire::vpd::logical_block_provisioning };
constexpr std::array<uint8_t, 2> disk_mode_pages = { wire::mode_page_caching, wire::mode_page_control };

template <typename T> wire::VpdHeader vpd_header(uint8_t page)
{
    wire::VpdHeader header { .peripheral = wire::peripheral_type_disk, .page_code = page, .page_length = {} };
    header.page_length.set(static_cast<uint16_t>(sizeof(T) - sizeof(wire::VpdHeader)));
    return header;
}

wire::ControlModePage control_page(wire::PageControl control)
{
    wire::ControlModePage page {};
    page.page_code = wire::mode_page_control;
    page.page_length = sizeof(page) - sizeof(wire::ModePageHeader);
    if (control != wire::PageControl::Changeable) {
        page.flags3 = 0x10; // queue algorithm modifier 1: unrestricted reordering
        page.busy_timeout_period.set(0xffff); // unlimited
    }
    return page;
}

} // namespace

ScsiOutcome ScsiDisk::inquiry(ScsiRequest& request)
{
    const InquiryProfile profile { wire::peripheral_type_disk, false, disk_versions, disk_vpd_pages };
    return answer_inquiry(
        request, profile, m_options.identity, [this](uint8_t page) -> std::optional<std::vector<uint8_t>> {
            switch (page) {
            case wire::vpd::block_limits:
                return vpd_block_limits();
            case wire::vpd::block_device_characteristics:
                return vpd_block_characteristics();
            case wire::vpd::logical_block_provisioning:
                return vpd_provisioning();
            default:
                return std::nullopt;
            }
        });
}

std::vector<uint8_t> ScsiDisk::vpd_block_limits() const
{
    wire::BlockLimitsVpd page {};
    page.header = vpd_header<wire::BlockLimitsVpd>(wire::vpd::block_limits);
    page.wsnz = 1;
    page.optimal_transfer_length_granularity.set(static_cast<uint16_t>(1u << m_physical_exponent));
    page.maximum_transfer_length.set(m_max_transfer_blocks);
    if (m_discard) {
        page.maximum_unmap_lba_count.set(m_max_unmap_blocks);
        page.maximum_unmap_block_descriptor_count.set(m_options.max_unmap_descriptors);
        page.optimal_unmap_granularity.set(1u << m_physical_exponent);
    }
    if (!m_read_only)
        page.maximum_write_same_length.set(m_max_unmap_blocks);
    return wire_bytes(page);
}

std::vector<uint8_t> ScsiDisk::vpd_block_characteristics() const
{
    wire::BlockDeviceCharacteristicsVpd page {};
    page.header = vpd_header<wire::BlockDeviceCharacteristicsVpd>(wire::vpd::block_device_characteristics);
    page.medium_rotation_rate.set(wire::rotation_rate_non_rotating);
    return wire_bytes(page);
}

std::vector<uint8_t> ScsiDisk::vpd_provisioning() const
{
    wire::LogicalBlockProvisioningVpd page {};
    page.header = vpd_header<wire::LogicalBlockProvisioningVpd>(wire::vpd::logical_block_provisioning);
    if (m_discard) {
        page.flags5 = wire::lbp_lbpu | wire::lbp_lbpws | wire::lbp_lbpws10 | wire::lbp_lbprz_zero;
        page.provisioning_type = wire::lbp_thin_provisioned;
    }
    return wire_bytes(page);
}

ScsiOutcome ScsiDisk::request_sense(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::RequestSenseCdb>();
    if ((cdb.flags & 0x01) != 0)
        return sense::invalid_field_in_cdb(1, 0); // descriptor format sense data is not supported
    // Autosense delivers every error with its command; only a pending unit attention is left to report here.
    SenseData data = SenseData::none();
    if (m_capacity_changed.exchange(false))
        data = SenseData::make(wire::sense_key::unit_attention, wire::asc::capacity_data_has_changed);
    return request.respond(data.bytes, cdb.allocation_length);
}

ScsiOutcome ScsiDisk::read_capacity_10(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::ReadCapacity10Cdb>();
    if ((cdb.pmi & 0x01) == 0 && cdb.lba.get() != 0)
        return sense::invalid_field_in_cdb(2);
    wire::ReadCapacity10Data data {};
    const uint64_t last = block_count() - 1;
    data.last_lba.set(static_cast<uint32_t>(std::min<uint64_t>(last, UINT32_MAX)));
    data.block_length.set(m_block_size);
    // The parameter data is always 8 bytes: there is no allocation length.
    return request.respond(wire_bytes(data), sizeof(data));
}

ScsiOutcome ScsiDisk::read_capacity_16(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::ReadCapacity16Cdb>();
    if ((cdb.pmi & 0x01) == 0 && cdb.lba.get() != 0)
        return sense::invalid_field_in_cdb(2);
    wire::ReadCapacity16Data data {};
    data.last_lba.set(block_count() - 1);
    data.block_length.set(m_block_size);
    data.protection = wire::rc16_basis_last_lba;
    data.exponents = m_physical_exponent;
    data.lowest_aligned_lba.set(m_discard ? static_cast<uint16_t>(wire::rc16_lbpme | wire::rc16_lbprz) : 0);
    return request.respond(wire_bytes(data), cdb.allocation_length.get());
}

ScsiOutcome ScsiDisk::mode_sense(ScsiRequest& request)
{
    ModeSenseSource source;
    source.device_specific = wire::mode_device_specific_dpofua;
    if (m_read_only)
        source.device_specific |= wire::mode_device_specific_wp;
    source.block_descriptor = true;
    source.block_count = block_count();
    source.block_length = m_block_size;
    source.pages = disk_mode_pages;
    source.append_page = [this](uint8_t code, wire::PageControl control, std::vector<uint8_t>& out) {
        if (code == wire::mode_page_caching) {
            wire::CachingModePage page {};
            page.page_code = wire::mode_page_caching;
            page.page_length = sizeof(page) - sizeof(wire::ModePageHeader);
            switch (control) {
            case wire::PageControl::Changeable:
                page.flags2 = wire::caching_wce | wire::caching_rcd;
                break;
            case wire::PageControl::Default:
                page.flags2 = wire::caching_wce;
                break;
            default:
                page.flags2 = static_cast<uint8_t>((m_write_cache.load() ? wire::caching_wce : 0)
                    | (m_read_cache_disabled.load() ? wire::caching_rcd : 0));
                break;
            }
            append_wire(out, page);
        } else {
            append_wire(out, control_page(control));
        }
    };
    return scsi::mode_sense(request, source);
}

ScsiOutcome ScsiDisk::mode_select(ScsiRequest& request)
{
    const bool ten = request.opcode() == op::mode_select_10;
    const auto [flags, length] = request.mode_select_fields();
    if ((flags & wire::mode_select_sp) != 0)
        return sense::invalid_field_in_cdb(1, 0); // no saved pages
    if (length == 0)
        return ScsiOutcome::good_with(0);
    if ((flags & wire::mode_select_pf) == 0)
        return sense::invalid_field_in_cdb(1, 4); // only the standard page format
    std::vector<uint8_t> list;
    if (auto failure = request.fetch_parameters(length, ten ? 7 : 4, list))
        return *failure;

    const size_t header_size = ten ? sizeof(wire::ModeHeader10) : sizeof(wire::ModeHeader6);
    if (list.size() < header_size)
        return sense::parameter_list_length_error();
    size_t descriptor_length = 0;
    bool long_lba = false;
    if (ten) {
        wire::ModeHeader10 header {};
        std::memcpy(&header, list.data(), sizeof(header));
        descriptor_length = header.block_descriptor_length.get();
        long_lba = (header.flags & wire::mode_header_longlba) != 0;
    } else {
        descriptor_length = list[3];
    }
    if (descriptor_length > list.size() - header_size)
        return sense::parameter_list_length_error();
    const size_t descriptor_size = long_lba ? sizeof(wire::LongBlockDescriptor) : sizeof(wire::ShortBlockDescriptor);
    if (descriptor_length % descriptor_size != 0)
        return sense::invalid_field_in_parameters(ten ? 6 : 3);
    // Block descriptors may restate the geometry but not change it.
    for (size_t at = header_size; at < header_size + descriptor_length; at += descriptor_size) {
        uint64_t blocks = 0;
        uint32_t block_length = 0;
        if (long_lba) {
            wire::LongBlockDescriptor descriptor {};
            std::memcpy(&descriptor, list.data() + at, sizeof(descriptor));
            blocks = descriptor.block_count.get();
            block_length = descriptor.block_length.get();
        } else {
            wire::ShortBlockDescriptor descriptor {};
            std::memcpy(&descriptor, list.data() + at, sizeof(descriptor));
            blocks = descriptor.block_count.get();
            block_length = descriptor.block_length.get();
        }
        const uint64_t current = long_lba ? block_count() : std::min<uint64_t>(block_count(), UINT32_MAX);
        if (blocks != 0 && blocks != current)
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at));
        if (block_length != m_block_size)
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at + (long_lba ? 12 : 5)));
    }

    // Validate every page before applying any: only the caching page's WCE and RCD bits may change.
    bool write_cache = m_write_cache.load();
    bool read_cache_disabled = m_read_cache_disabled.load();
    for (size_t at = header_size + descriptor_length; at < list.size();) {
        if (list.size() - at < sizeof(wire::ModePageHeader))
            return sense::parameter_list_length_error();
        const uint8_t code = list[at] & 0x3f;
        if ((list[at] & wire::mode_page_spf) != 0)
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at), 6); // no subpages
        const size_t page_size = sizeof(wire::ModePageHeader) + list[at + 1];
        if (page_size > list.size() - at)
            return sense::parameter_list_length_error();
        const std::span<const uint8_t> page(list.data() + at, page_size);
        std::vector<uint8_t> current;
        if (code == wire::mode_page_caching) {
            current = wire_bytes(wire::CachingModePage {});
        } else if (code == wire::mode_page_control) {
            current = wire_bytes(control_page(wire::PageControl::Current));
        } else {
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at), 5);
        }
        if (page.size() != current.size())
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at + 1));
        for (size_t i = 2; i < page.size(); ++i) {
            uint8_t changeable = 0;
            if (code == wire::mode_page_caching && i == offsetof(wire::CachingModePage, flags2))
                changeable = wire::caching_wce | wire::caching_rcd;
            if ((page[i] & ~changeable) != (current[i] & ~changeable))
                return sense::invalid_field_in_parameters(static_cast<uint16_t>(at + i));
        }
        if (code == wire::mode_page_caching) {
            write_cache = (page[2] & wire::caching_wce) != 0;
            read_cache_disabled = (page[2] & wire::caching_rcd) != 0;
        }
        at += page_size;
    }
    // Turning the write cache off makes what it held durable before the change is reported.
    if (m_write_cache.load() && !write_cache && !m_read_only) {
        if (auto flushed = m_disk->flush(); !flushed)
            return sense::medium_error(wire::asc::write_error, UINT64_MAX, std::move(flushed).error());
    }
    m_write_cache.store(write_cache);
    m_read_cache_disabled.store(read_cache_disabled);
    return ScsiOutcome::good_with(list.size());
}

} // namespace vmgen::vm::scsi
