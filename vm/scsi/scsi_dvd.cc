#include "vm/scsi/scsi_dvd.h"

#include "protocols/scsi/mmc.h"
#include "protocols/scsi/sbc.h"
#include "support/log.h"
#include "vm/scsi/block_transfer.h"
#include "vm/scsi/mode_sense.h"
#include "vm/scsi/scsi_request.h"

#include <array>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;
namespace op = protocols::scsi::opcode;

namespace {

constexpr std::array<uint16_t, 3> dvd_versions
    = { wire::version_descriptor::sam5, wire::version_descriptor::spc4, wire::version_descriptor::mmc6 };
constexpr std::array<uint8_t, 3> dvd_vpd_pages
    = { wire::vpd::supported_pages, wire::vpd::unit_serial_number, wire::vpd::device_identification };
constexpr std::array<uint8_t, 1> dvd_mode_pages = { wire::mode_page_capabilities };
constexpr uint16_t dvd_read_speed = 24 * wire::cd_speed_1x; // what page 2Ah claims (kB/s)

// Commands a pending unit attention does not affect (SPC-4 "Unit attention condition"; MMC-6 adds GET
// CONFIGURATION and GET EVENT STATUS NOTIFICATION).
bool ignores_unit_attention(uint8_t opcode)
{
    switch (opcode) {
    case op::inquiry:
    case op::report_luns:
    case op::request_sense:
    case op::get_configuration:
    case op::get_event_status_notification:
        return true;
    default:
        return false;
    }
}

} // namespace

ScsiDvd::ScsiDvd(ScsiDvdOptions options)
    : m_options(std::move(options))
{
    if (m_options.identity.product.empty())
        m_options.identity.product = "Virtual DVD-ROM";
    m_options.identity = normalized_identity(std::move(m_options.identity));
}

void ScsiDvd::reset()
{
    std::lock_guard lock(m_mutex);
    m_prevent_removal = false;
}

Result<void> ScsiDvd::change_media(std::unique_ptr<disk::BlockDevice> media)
{
    Snapshot next;
    if (media) {
        const uint32_t sector = media->sector_size();
        if (sector == 0 || wire::mmc_block_size % sector != 0)
            return fail("DVD medium: logical sector size {} does not divide 2048", sector);
        const uint64_t blocks = media->size() / wire::mmc_block_size;
        if (blocks == 0)
            return fail("DVD medium: {} bytes hold no 2048-byte block", media->size());
        if (blocks > UINT32_MAX)
            return fail("DVD medium: {} blocks are more than READ CAPACITY can report", blocks);
        next.blocks = static_cast<uint32_t>(blocks);
        next.media = std::move(media);
    }
    std::shared_ptr<disk::BlockDevice> old;
    {
        std::lock_guard lock(m_mutex);
        old = std::move(m_current.media);
        const bool inserted = next.media != nullptr;
        m_current = std::move(next);
        if (inserted) {
            m_unit_attention = true;
            m_pending_event = wire::media_event_new_media;
        } else if (old) {
            m_unit_attention = false;
            m_pending_event = wire::media_event_removal;
        }
    }
    // `old` is released here, outside the lock (a read still running on it keeps its own reference).
    return {};
}

void ScsiDvd::remove_media_locked()
{
    if (m_current.media)
        m_pending_event = wire::media_event_removal;
    m_current = Snapshot {};
    m_unit_attention = false;
}

bool ScsiDvd::request_eject()
{
    std::shared_ptr<disk::BlockDevice> old;
    std::lock_guard lock(m_mutex);
    if (!m_current.media)
        return true;
    if (m_prevent_removal) {
        m_pending_event = wire::media_event_eject_request;
        return false;
    }
    old = m_current.media;
    remove_media_locked();
    return true;
}

bool ScsiDvd::has_media() const
{
    std::lock_guard lock(m_mutex);
    return m_current.media != nullptr;
}

bool ScsiDvd::removal_prevented() const
{
    std::lock_guard lock(m_mutex);
    return m_prevent_removal;
}

ScsiOutcome ScsiDvd::execute(const ScsiCommand& command, DataBuffer& data)
{
    ScsiRequest request(command, data);
    if (request.cdb_size() == 0) {
        log_debug("scsi", "dvd: opcode {:#04x} with a {}-byte CDB refused", request.opcode(), command.cdb_length);
        return sense::invalid_opcode();
    }
    if (request.naca())
        return sense::invalid_field_in_cdb(static_cast<uint16_t>(request.cdb_size() - 1), 2);
    Snapshot snapshot;
    {
        std::lock_guard lock(m_mutex);
        if (m_unit_attention && !ignores_unit_attention(request.opcode())) {
            m_unit_attention = false;
            return sense::unit_attention(wire::asc::medium_may_have_changed);
        }
        snapshot = m_current;
    }
    return dispatch(request, snapshot);
}

ScsiOutcome ScsiDvd::dispatch(ScsiRequest& request, const Snapshot& snapshot)
{
    switch (request.opcode()) {
    case op::inquiry:
        return inquiry(request);
    case op::report_luns: {
        const uint16_t lun = m_options.lun;
        return report_luns(request.command(), request.data(), std::span<const uint16_t>(&lun, 1));
    }
    case op::request_sense:
        return request_sense(request);
    case op::get_configuration:
        return get_configuration(request, snapshot);
    case op::get_event_status_notification:
        return get_event_status(request);
    case op::mode_sense_6:
    case op::mode_sense_10:
        return mode_sense(request);
    case op::mode_select_6:
    case op::mode_select_10:
        return mode_select(request);
    case op::prevent_allow_medium_removal:
        return prevent_allow(request);
    case op::start_stop_unit:
        return start_stop_unit(request);
    case op::set_cd_speed:
        return ScsiOutcome::good_with(0); // one speed fits all
    default:
        break;
    }

    // The rest access the medium.
    switch (request.opcode()) {
    case op::test_unit_ready:
    case op::read_capacity_10:
    case op::read_10:
    case op::read_12:
    case op::read_toc_pma_atip:
    case op::read_disc_information:
    case op::read_track_information:
    case op::get_performance:
        if (!snapshot.media)
            return sense::medium_not_present();
        break;
    case op::read_dvd_structure:
        break; // its list format does not need a medium; the others check
    default:
        log_debug("scsi", "dvd: unsupported opcode {:#04x}", request.opcode());
        return sense::invalid_opcode();
    }
    switch (request.opcode()) {
    case op::test_unit_ready:
        return ScsiOutcome::good_with(0);
    case op::read_capacity_10:
        return read_capacity(request, snapshot);
    case op::read_10:
    case op::read_12:
        return read(request, snapshot);
    case op::read_toc_pma_atip:
        return read_toc(request, snapshot);
    case op::read_disc_information:
        return read_disc_information(request, snapshot);
    case op::read_track_information:
        return read_track_information(request, snapshot);
    case op::get_performance:
        return get_performance(request, snapshot);
    default:
        return read_dvd_structure(request, snapshot);
    }
}

ScsiOutcome ScsiDvd::inquiry(ScsiRequest& request)
{
    const InquiryProfile profile { wire::peripheral_type_cd_dvd, true, dvd_versions, dvd_vpd_pages };
    return answer_inquiry(request, profile, m_options.identity, {});
}

ScsiOutcome ScsiDvd::request_sense(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::RequestSenseCdb>();
    if ((cdb.flags & 0x01) != 0)
        return sense::invalid_field_in_cdb(1, 0);
    SenseData data = SenseData::none();
    {
        std::lock_guard lock(m_mutex);
        if (m_unit_attention) {
            m_unit_attention = false;
            data = SenseData::make(wire::sense_key::unit_attention, wire::asc::medium_may_have_changed);
        } else if (!m_current.media) {
            data = SenseData::make(wire::sense_key::not_ready, wire::asc::medium_not_present);
        }
    }
    return request.respond(data.bytes, cdb.allocation_length);
}

ScsiOutcome ScsiDvd::read_capacity(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::ReadCapacity10Cdb>();
    if ((cdb.pmi & 0x01) == 0 && cdb.lba.get() != 0)
        return sense::invalid_field_in_cdb(2);
    wire::ReadCapacity10Data data {};
    data.last_lba.set(snapshot.blocks - 1);
    data.block_length.set(wire::mmc_block_size);
    return request.respond(wire_bytes(data), sizeof(data));
}

ScsiOutcome ScsiDvd::read(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto [lba, count, flags, length_field] = request.block_fields();
    if ((flags & wire::rw_protect_mask) != 0)
        return sense::invalid_field_in_cdb(1, 7);
    if (lba >= snapshot.blocks || count > snapshot.blocks - lba)
        return sense::lba_out_of_range();
    if (count == 0)
        return ScsiOutcome::good_with(0);
    const uint64_t bytes = count * wire::mmc_block_size;
    if (bytes > request.data_in_limit())
        return sense::buffer_too_small(length_field);
    TransferResult result = read_to_buffer(*snapshot.media, lba * wire::mmc_block_size, bytes, request.data(), 0);
    if (!result.ok()) {
        const uint64_t done_blocks = result.done / wire::mmc_block_size;
        ScsiOutcome outcome = result.failure == TransferResult::Failure::Disk
            ? sense::medium_error(
                wire::asc::unrecovered_read_error, lba + done_blocks, result.error.value_or(Error("I/O failed")))
            : sense::buffer_fault(result.error.value_or(Error("buffer fault")), 0);
        outcome.transferred = done_blocks * wire::mmc_block_size;
        return outcome;
    }
    return ScsiOutcome::good_with(bytes);
}

ScsiOutcome ScsiDvd::mode_sense(ScsiRequest& request)
{
    bool prevented = false;
    {
        std::lock_guard lock(m_mutex);
        prevented = m_prevent_removal;
    }
    ModeSenseSource source;
    source.pages = dvd_mode_pages;
    source.append_page = [prevented](uint8_t, wire::PageControl control, std::vector<uint8_t>& out) {
        wire::CapabilitiesModePage page {};
        page.page_code = wire::mode_page_capabilities;
        page.page_length = sizeof(page) - sizeof(wire::ModePageHeader);
        if (control != wire::PageControl::Changeable) {
            page.read_caps
                = wire::capabilities_read_dvd_rom | wire::capabilities_read_cd_rw | wire::capabilities_read_cd_r;
            page.caps4
                = wire::capabilities_multi_session | wire::capabilities_mode2_form2 | wire::capabilities_mode2_form1;
            page.mechanism = wire::loading_mechanism_tray | wire::mechanism_eject | wire::mechanism_lock;
            if (prevented && control == wire::PageControl::Current)
                page.mechanism |= wire::mechanism_lock_state;
            page.maximum_read_speed.set(dvd_read_speed);
            page.current_read_speed.set(dvd_read_speed);
        }
        append_wire(out, page);
    };
    return scsi::mode_sense(request, source);
}

ScsiOutcome ScsiDvd::mode_select(ScsiRequest& request)
{
    const bool ten = request.opcode() == op::mode_select_10;
    const auto [flags, length] = request.mode_select_fields();
    if ((flags & wire::mode_select_sp) != 0)
        return sense::invalid_field_in_cdb(1, 0);
    if (length == 0)
        return ScsiOutcome::good_with(0);
    std::vector<uint8_t> list;
    if (auto failure = request.fetch_parameters(length, ten ? 7 : 4, list))
        return *failure;
    const size_t header_size = ten ? sizeof(wire::ModeHeader10) : sizeof(wire::ModeHeader6);
    if (list.size() < header_size)
        return sense::parameter_list_length_error();
    size_t descriptor_length = list[3];
    if (ten) {
        wire::ModeHeader10 header {};
        std::memcpy(&header, list.data(), sizeof(header));
        if ((header.flags & wire::mode_header_longlba) != 0)
            return sense::invalid_field_in_parameters(4, 0);
        descriptor_length = header.block_descriptor_length.get();
    }
    if (descriptor_length > list.size() - header_size)
        return sense::parameter_list_length_error();
    if (descriptor_length % sizeof(wire::ShortBlockDescriptor) != 0)
        return sense::invalid_field_in_parameters(ten ? 6 : 3);
    // A block descriptor may restate the 2048-byte block (Linux's sr_set_blocklength); nothing else changes.
    for (size_t at = header_size; at < header_size + descriptor_length; at += sizeof(wire::ShortBlockDescriptor)) {
        wire::ShortBlockDescriptor descriptor {};
        std::memcpy(&descriptor, list.data() + at, sizeof(descriptor));
        if (descriptor.block_length.get() != wire::mmc_block_size)
            return sense::invalid_field_in_parameters(static_cast<uint16_t>(at + 5));
    }
    if (header_size + descriptor_length < list.size())
        return sense::invalid_field_in_parameters(static_cast<uint16_t>(header_size + descriptor_length));
    return ScsiOutcome::good_with(list.size());
}

ScsiOutcome ScsiDvd::prevent_allow(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::PreventAllowCdb>();
    // Bit 0 prevents removal; bit 1 (persistent prevention, for changers) is treated alike.
    std::lock_guard lock(m_mutex);
    m_prevent_removal = (cdb.prevent & 0x03) != 0;
    return ScsiOutcome::good_with(0);
}

ScsiOutcome ScsiDvd::start_stop_unit(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::StartStopUnitCdb>();
    // Power conditions and spinning up or down mean nothing to a virtual drive; LoEj with Start = 0 ejects,
    // LoEj with Start = 1 loads (closes the tray: the drive stays as it is).
    const bool eject = (cdb.flags & wire::start_stop_power_condition_mask) == 0
        && (cdb.flags & wire::start_stop_loej) != 0 && (cdb.flags & wire::start_stop_start) == 0;
    if (!eject)
        return ScsiOutcome::good_with(0);
    std::shared_ptr<disk::BlockDevice> old;
    {
        std::lock_guard lock(m_mutex);
        if (m_prevent_removal)
            return sense::removal_prevented();
        if (!m_current.media)
            return ScsiOutcome::good_with(0);
        old = m_current.media;
        remove_media_locked();
    }
    if (m_options.on_guest_eject)
        m_options.on_guest_eject();
    return ScsiOutcome::good_with(0);
}

} // namespace vmgen::vm::scsi
