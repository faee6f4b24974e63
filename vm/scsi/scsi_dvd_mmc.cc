// ScsiDvd: the MMC reports (GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, READ TOC/PMA/ATIP, READ DISC
// INFORMATION, READ TRACK INFORMATION, READ DVD STRUCTURE, GET PERFORMANCE) for a single-session disc with one
// data track.
#include "protocols/scsi/mmc.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/scsi/scsi_request.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmgen::vm::scsi {

namespace wire = protocols::scsi;

namespace {

constexpr uint32_t performance_kbps = 24 * wire::cd_speed_1x;

uint16_t current_profile(uint32_t blocks, bool present)
{
    if (!present)
        return wire::profile::none;
    return blocks > wire::cd_max_blocks ? wire::profile::dvd_rom : wire::profile::cd_rom;
}

// One feature descriptor: header and body.
struct Feature {
    uint16_t code;
    bool current;
    std::vector<uint8_t> bytes;
};

template <typename Body>
Feature make_feature(uint16_t code, uint8_t version, bool persistent, bool current, const Body& body)
{
    Feature feature { code, current, {} };
    wire::FeatureDescriptorHeader header {};
    header.code.set(code);
    header.flags = static_cast<uint8_t>(wire::feature_version(version) | (persistent ? wire::feature_persistent : 0)
        | (current ? wire::feature_current : 0));
    header.additional_length = static_cast<uint8_t>(sizeof(Body));
    append_wire(feature.bytes, header);
    append_wire(feature.bytes, body);
    return feature;
}

std::vector<Feature> features(uint16_t profile)
{
    const bool present = profile != wire::profile::none;
    std::vector<Feature> list;

    // Profile List (0000h): every profile we can be, in order of preference, the current one flagged.
    std::array<wire::ProfileDescriptor, 2> profiles {};
    profiles[0].profile.set(wire::profile::dvd_rom);
    profiles[0].current = profile == wire::profile::dvd_rom ? 1 : 0;
    profiles[1].profile.set(wire::profile::cd_rom);
    profiles[1].current = profile == wire::profile::cd_rom ? 1 : 0;
    list.push_back(make_feature(wire::feature::profile_list, 0, true, true, profiles));

    wire::CoreFeature core {};
    core.physical_interface.set(wire::physical_interface_scsi);
    core.flags = 0x01; // DBE
    list.push_back(make_feature(wire::feature::core, 2, true, true, core));

    const std::array<uint8_t, 4> morphing {}; // no asynchronous GESN, no operational change events
    list.push_back(make_feature(wire::feature::morphing, 1, true, true, morphing));

    wire::RemovableMediumFeature removable {};
    removable.flags
        = wire::loading_mechanism_tray | wire::removable_load | wire::removable_eject | wire::removable_lock;
    list.push_back(make_feature(wire::feature::removable_medium, 0, true, true, removable));

    wire::RandomReadableFeature random {};
    random.logical_block_size.set(wire::mmc_block_size);
    random.blocking.set(profile == wire::profile::dvd_rom ? 16 : 1);
    list.push_back(make_feature(wire::feature::random_readable, 0, false, present, random));

    const std::array<uint8_t, 4> cd_read {};
    list.push_back(make_feature(wire::feature::cd_read, 2, false, profile == wire::profile::cd_rom, cd_read));
    const std::array<uint8_t, 4> dvd_read {};
    list.push_back(make_feature(wire::feature::dvd_read, 1, false, profile == wire::profile::dvd_rom, dvd_read));
    return list;
}

// An MSF address of an LBA (saturating beyond the 255-minute range a CD address can hold).
std::array<uint8_t, 4> msf(uint32_t lba)
{
    const uint64_t frames
        = std::min<uint64_t>(uint64_t { lba } + wire::msf_lba_offset, 255ull * 60 * 75 + 59 * 75 + 74);
    return { 0, static_cast<uint8_t>(frames / (60 * 75)), static_cast<uint8_t>((frames / 75) % 60),
        static_cast<uint8_t>(frames % 75) };
}

wire::TocTrackDescriptor toc_descriptor(uint8_t track, uint32_t lba, bool use_msf)
{
    wire::TocTrackDescriptor descriptor {};
    descriptor.adr_control = wire::toc_adr_control_data;
    descriptor.track = track;
    if (use_msf) {
        const auto address = msf(lba);
        std::copy(address.begin(), address.end(), descriptor.address);
    } else {
        wire::Be32 address {};
        address.set(lba);
        std::copy(std::begin(address.bytes), std::end(address.bytes), descriptor.address);
    }
    return descriptor;
}

} // namespace

ScsiOutcome ScsiDvd::get_configuration(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::GetConfigurationCdb>();
    const uint8_t rt = cdb.rt & 0x03;
    if (rt == 3)
        return sense::invalid_field_in_cdb(1, 1);
    const uint16_t start = cdb.starting_feature.get();
    const uint16_t profile = current_profile(snapshot.blocks, snapshot.media != nullptr);

    std::vector<uint8_t> response(sizeof(wire::FeatureHeader));
    for (const Feature& feature : features(profile)) {
        bool wanted = false;
        switch (rt) {
        case wire::get_configuration_rt_all:
            wanted = feature.code >= start;
            break;
        case wire::get_configuration_rt_current:
            wanted = feature.code >= start && feature.current;
            break;
        default:
            wanted = feature.code == start;
            break;
        }
        if (wanted)
            response.insert(response.end(), feature.bytes.begin(), feature.bytes.end());
    }
    wire::FeatureHeader header {};
    header.data_length.set(static_cast<uint32_t>(response.size() - sizeof(header.data_length)));
    header.current_profile.set(profile);
    std::memcpy(response.data(), &header, sizeof(header));
    return request.respond(response, cdb.allocation_length.get());
}

ScsiOutcome ScsiDvd::get_event_status(ScsiRequest& request)
{
    const auto cdb = request.cdb<wire::GetEventStatusCdb>();
    if ((cdb.polled & 0x01) == 0)
        return sense::invalid_field_in_cdb(1, 0); // asynchronous notification is not supported
    const uint16_t allocation = cdb.allocation_length.get();
    std::vector<uint8_t> response;
    wire::EventHeader header {};
    header.supported_classes = wire::event_class_media_bit;
    if ((cdb.class_request & wire::event_class_media_bit) == 0) {
        header.event_data_length.set(sizeof(header) - sizeof(header.event_data_length));
        header.notification_class = wire::event_nea;
        append_wire(response, header);
        return request.respond(response, allocation);
    }
    wire::MediaEventDescriptor descriptor {};
    {
        std::lock_guard lock(m_mutex);
        // The event is consumed only when the initiator can see it.
        const bool delivered = allocation >= sizeof(header) + sizeof(descriptor)
            && request.data_in_limit() >= sizeof(header) + sizeof(descriptor);
        descriptor.event_code = m_pending_event;
        if (delivered)
            m_pending_event = wire::media_event_none;
        descriptor.media_status = m_current.media ? wire::media_status_present : 0;
    }
    header.event_data_length.set(sizeof(header) + sizeof(descriptor) - sizeof(header.event_data_length));
    header.notification_class = wire::event_class_media;
    append_wire(response, header);
    append_wire(response, descriptor);
    return request.respond(response, allocation);
}

ScsiOutcome ScsiDvd::read_toc(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::ReadTocCdb>();
    const bool use_msf = (cdb.flags & wire::toc_msf) != 0;
    uint8_t format = cdb.format & 0x0f;
    // SFF-8020 drives took the format from the CONTROL byte's top bits; Linux's sr_cd_check still asks that way.
    if (format == 0 && (cdb.control >> 6) != 0)
        format = static_cast<uint8_t>(cdb.control >> 6);

    std::vector<uint8_t> response(sizeof(wire::TocHeader));
    wire::TocHeader header {};
    header.first = 1;
    header.last = 1;
    switch (format) {
    case wire::toc_format_toc: {
        const uint8_t track = cdb.track_session;
        if (track > 1 && track != wire::toc_leadout_track)
            return sense::invalid_field_in_cdb(6);
        if (track <= 1)
            append_wire(response, toc_descriptor(1, 0, use_msf));
        append_wire(response, toc_descriptor(wire::toc_leadout_track, snapshot.blocks, use_msf));
        break;
    }
    case wire::toc_format_session_info:
        // Session 1 starts with track 1 at LBA 0.
        append_wire(response, toc_descriptor(1, 0, use_msf));
        break;
    default:
        return sense::invalid_field_in_cdb(2);
    }
    header.data_length.set(static_cast<uint16_t>(response.size() - sizeof(header.data_length)));
    std::memcpy(response.data(), &header, sizeof(header));
    return request.respond(response, cdb.allocation_length.get());
}

ScsiOutcome ScsiDvd::read_disc_information(ScsiRequest& request, const Snapshot&)
{
    const auto cdb = request.cdb<wire::ReadDiscInformationCdb>();
    if ((cdb.data_type & 0x07) != 0)
        return sense::invalid_field_in_cdb(1, 2); // only standard disc information
    wire::DiscInformation info {};
    info.length.set(sizeof(info) - sizeof(info.length));
    info.status = wire::disc_status_complete_session;
    info.first_track = 1;
    info.sessions_lsb = 1;
    info.first_track_last_session_lsb = 1;
    info.last_track_last_session_lsb = 1;
    info.flags7 = 0x20; // URU: unrestricted use
    info.last_session_lead_in.set(0xffffffff);
    info.last_possible_lead_out.set(0xffffffff);
    return request.respond(wire_bytes(info), cdb.allocation_length.get());
}

ScsiOutcome ScsiDvd::read_track_information(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::ReadTrackInformationCdb>();
    const uint32_t address = cdb.address.get();
    switch (cdb.address_type & 0x03) {
    case 0: // the track holding this LBA
        if (address >= snapshot.blocks)
            return sense::lba_out_of_range();
        break;
    case 1: // track number
    case 2: // session number: its first track
        if (address != 1)
            return sense::invalid_field_in_cdb(5);
        break;
    default:
        return sense::invalid_field_in_cdb(1, 1);
    }
    wire::TrackInformation info {};
    info.length.set(sizeof(info) - sizeof(info.length));
    info.track_lsb = 1;
    info.session_lsb = 1;
    info.track_mode = 0x04; // data track, recorded uninterrupted
    info.data_mode = 0x01; // mode 1
    info.track_size.set(snapshot.blocks);
    return request.respond(wire_bytes(info), cdb.allocation_length.get());
}

ScsiOutcome ScsiDvd::read_dvd_structure(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::ReadDvdStructureCdb>();
    if ((cdb.media_type & 0x0f) != 0)
        return sense::invalid_field_in_cdb(1, 3); // DVD structures only (no BD)
    const uint16_t allocation = cdb.allocation_length.get();
    std::vector<uint8_t> response(sizeof(wire::DvdStructureHeader));
    switch (cdb.format) {
    case wire::dvd_structure_list: {
        const std::array<std::pair<uint8_t, uint16_t>, 3> formats = {
            std::pair<uint8_t, uint16_t> { wire::dvd_structure_physical, wire::dvd_physical_format_size },
            std::pair<uint8_t, uint16_t> { wire::dvd_structure_copyright, sizeof(wire::DvdCopyright) },
            std::pair<uint8_t, uint16_t> { wire::dvd_structure_list, 3 * sizeof(wire::DvdStructureListEntry) },
        };
        for (const auto& [format, length] : formats) {
            wire::DvdStructureListEntry entry {};
            entry.format = format;
            entry.flags = wire::dvd_structure_rds;
            entry.length.set(length);
            append_wire(response, entry);
        }
        break;
    }
    case wire::dvd_structure_physical:
    case wire::dvd_structure_copyright: {
        if (!snapshot.media)
            return sense::medium_not_present();
        if (current_profile(snapshot.blocks, true) != wire::profile::dvd_rom)
            return sense::incompatible_medium();
        if (cdb.layer != 0)
            return sense::invalid_field_in_cdb(6);
        if (cdb.format == wire::dvd_structure_physical) {
            wire::DvdPhysicalFormat physical {};
            physical.book = 0x01; // DVD-ROM, part version 1
            physical.size_rate = 0x0f; // 120 mm, maximum rate not specified
            physical.layers = 0x01; // one layer, parallel track path, read-only
            physical.data_start.set(wire::dvd_first_physical_sector);
            physical.data_end.set(wire::dvd_first_physical_sector + snapshot.blocks - 1);
            append_wire(response, physical);
            response.resize(sizeof(wire::DvdStructureHeader) + wire::dvd_physical_format_size);
        } else {
            append_wire(response, wire::DvdCopyright {}); // no copy protection
        }
        break;
    }
    default:
        return sense::invalid_field_in_cdb(7);
    }
    wire::DvdStructureHeader header {};
    header.data_length.set(static_cast<uint16_t>(response.size() - sizeof(header.data_length)));
    std::memcpy(response.data(), &header, sizeof(header));
    return request.respond(response, allocation);
}

ScsiOutcome ScsiDvd::get_performance(ScsiRequest& request, const Snapshot& snapshot)
{
    const auto cdb = request.cdb<wire::GetPerformanceCdb>();
    if (cdb.type != 0)
        return sense::invalid_field_in_cdb(10); // only performance data
    const uint8_t except = cdb.flags & wire::performance_except_mask;
    if (except == 3)
        return sense::invalid_field_in_cdb(1, 1);
    const bool write = (cdb.flags & wire::performance_write) != 0;
    // Nominal read performance: one descriptor for the whole medium. We write nothing and have no exceptions.
    const bool describe = !write && except == 0 && cdb.maximum_descriptors.get() > 0;
    std::vector<uint8_t> response(sizeof(wire::PerformanceHeader));
    if (describe) {
        wire::PerformanceDescriptor descriptor {};
        descriptor.start_performance.set(performance_kbps);
        descriptor.end_lba.set(snapshot.blocks - 1);
        descriptor.end_performance.set(performance_kbps);
        append_wire(response, descriptor);
    }
    wire::PerformanceHeader header {};
    header.data_length.set(static_cast<uint32_t>(response.size() - sizeof(header.data_length)));
    header.flags = write ? 0x02 : 0;
    std::memcpy(response.data(), &header, sizeof(header));
    return request.respond(response, response.size());
}

} // namespace vmgen::vm::scsi
