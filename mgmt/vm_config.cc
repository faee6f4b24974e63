#include "mgmt/vm_config.h"

#include "mgmt/scsi_settings.h"
#include "mgmt/vm_settings.h"

#include <nlohmann/json.hpp>

#include <ctime>
#include <random>

namespace vmgen::mgmt {
namespace {

using nlohmann::json;

const char* type_name(const json& value)
{
    if (value.is_null())
        return "null";
    if (value.is_boolean())
        return "a boolean";
    if (value.is_number())
        return "a number";
    if (value.is_string())
        return "a string";
    if (value.is_array())
        return "an array";
    return "an object";
}

// Field readers over one JSON object; errors name the field.
class FieldReader {
public:
    FieldReader(const json& object, std::string prefix) : m_object(object), m_prefix(std::move(prefix)) {}

    Result<const json*> field(const char* key) const
    {
        auto it = m_object.find(key);
        if (it == m_object.end())
            return fail("field '{}{}' is missing", m_prefix, key);
        return &*it;
    }

    Result<std::string> string(const char* key) const
    {
        auto* value = TRY(field(key));
        if (!value->is_string())
            return fail("field '{}{}' is not a string (it is {})", m_prefix, key, type_name(*value));
        return value->get<std::string>();
    }

    Result<uint64_t> unsigned_number(const char* key) const
    {
        auto* value = TRY(field(key));
        if (!value->is_number())
            return fail("field '{}{}' is not a number (it is {})", m_prefix, key, type_name(*value));
        if (value->is_number_float())
            return fail("field '{}{}' is not a whole number", m_prefix, key);
        if (!value->is_number_unsigned())
            return fail("field '{}{}' is negative", m_prefix, key);
        return value->get<uint64_t>();
    }

    Result<bool> boolean(const char* key) const
    {
        auto* value = TRY(field(key));
        if (!value->is_boolean())
            return fail("field '{}{}' is not a boolean (it is {})", m_prefix, key, type_name(*value));
        return value->get<bool>();
    }

    Result<const json*> array(const char* key) const
    {
        auto* value = TRY(field(key));
        if (!value->is_array())
            return fail("field '{}{}' is not an array (it is {})", m_prefix, key, type_name(*value));
        return value;
    }

    Result<const json*> object(const char* key) const
    {
        auto* value = TRY(field(key));
        if (!value->is_object())
            return fail("field '{}{}' is not an object (it is {})", m_prefix, key, type_name(*value));
        return value;
    }

    [[nodiscard]] const std::string& prefix() const { return m_prefix; }

private:
    const json& m_object;
    std::string m_prefix;
};

Result<vmm::SerialPortConfig> read_com_port(const json& ports, const char* number)
{
    FieldReader reader(ports, "com_ports.");
    auto* port_json = TRY(reader.object(number));
    FieldReader port_reader(*port_json, fmt::format("com_ports.{}.", number));
    vmm::SerialPortConfig port;
    auto kind = TRY(port_reader.string("kind"));
    auto parsed = parse_com_port_kind(kind);
    if (!parsed)
        return fail("field 'com_ports.{}.kind': {}", number, parsed.error().message());
    port.kind = *parsed;
    port.path = TRY(port_reader.string("path"));
    bool needs_path =
        port.kind == vmm::SerialPortConfig::Kind::File || port.kind == vmm::SerialPortConfig::Kind::UnixSocket;
    if (needs_path && port.path.empty())
        return fail("field 'com_ports.{}.path' is empty but kind '{}' needs a path", number, kind);
    return port;
}

// "integration_services": optional (configs written before it existed get Hyper-V's defaults); when present,
// every service is required.
Result<vmm::IntegrationServices> read_integration_services(const json& root)
{
    vmm::IntegrationServices services;
    if (!root.contains("integration_services"))
        return services;
    FieldReader reader(root, "");
    auto* object = TRY(reader.object("integration_services"));
    FieldReader service_reader(*object, "integration_services.");
    for (const auto& service : integration_service_list) {
        std::string key(service.config_key);
        services.*service.enabled = TRY(service_reader.boolean(key.c_str()));
    }
    return services;
}

// "scsi": optional (configs written before it existed get the generation's default controllers and no drives);
// when present, every key is required.
Result<void> read_scsi(const json& root, VmConfig& config)
{
    config.scsi_controllers = default_scsi_controllers(config.generation);
    config.scsi_drives.clear();
    if (!root.contains("scsi"))
        return {};
    FieldReader reader(root, "");
    auto* scsi = TRY(reader.object("scsi"));
    FieldReader scsi_reader(*scsi, "scsi.");
    auto controllers = TRY(scsi_reader.unsigned_number("controllers"));
    if (controllers > vmm::max_scsi_controllers)
        return fail("field 'scsi.controllers' is {}, a virtual machine has at most {} SCSI controllers", controllers,
                    vmm::max_scsi_controllers);
    config.scsi_controllers = static_cast<unsigned>(controllers);
    auto* drives = TRY(scsi_reader.array("drives"));
    for (size_t i = 0; i < drives->size(); ++i) {
        const auto& entry = (*drives)[i];
        auto prefix = fmt::format("scsi.drives[{}].", i);
        if (!entry.is_object())
            return fail("field 'scsi.drives[{}]' is not an object (it is {})", i, type_name(entry));
        FieldReader drive_reader(entry, prefix);
        vmm::ScsiDriveConfig drive;
        auto type = TRY(drive_reader.string("type"));
        auto kind = parse_drive_kind(type);
        if (!kind)
            return fail("field '{}type': {}", prefix, kind.error().message());
        drive.kind = *kind;
        auto controller = TRY(drive_reader.unsigned_number("controller"));
        auto location = TRY(drive_reader.unsigned_number("location"));
        if (controller >= vmm::max_scsi_controllers || location >= vmm::max_scsi_locations)
            return fail("field '{}': SCSI {}:{} is out of range (controllers 0-{}, locations 0-{})",
                        fmt::format("scsi.drives[{}]", i), controller, location, vmm::max_scsi_controllers - 1,
                        vmm::max_scsi_locations - 1);
        drive.controller = static_cast<unsigned>(controller);
        drive.location = static_cast<unsigned>(location);
        drive.path = TRY(drive_reader.string("path"));
        drive.read_only = TRY(drive_reader.boolean("read_only"));
        config.scsi_drives.push_back(std::move(drive));
    }
    if (auto valid = validate_scsi_layout(config.scsi_controllers, config.scsi_drives); !valid)
        return fail("field 'scsi': {}", valid.error().message());
    sort_drives(config.scsi_drives);
    return {};
}

Result<VmConfig> parse_fields(const json& root, std::string_view folder_name)
{
    if (!root.is_object())
        return fail("the top level is {}, not an object", type_name(root));
    FieldReader reader(root, "");
    auto version_field = root.find("version");
    if (version_field == root.end())
        return fail("field 'version' is missing");
    if (!version_field->is_number_integer())
        return fail("field 'version' is not a whole number (it is {})", type_name(*version_field));
    if (version_field->get<int64_t>() != config_version)
        return fail("unsupported config version {} (this vmgen reads version {})", version_field->get<int64_t>(),
                    config_version);

    VmConfig config;
    config.name = TRY(reader.string("name"));
    if (config.name != folder_name)
        return fail("field 'name' is '{}' but the folder is '{}'", config.name, folder_name);
    if (auto valid = validate_vm_name(config.name); !valid)
        return fail("field 'name': {}", valid.error().message());
    config.id = TRY(reader.string("id"));
    if (!is_uuid(config.id))
        return fail("field 'id' is not a UUID: '{}'", config.id);
    config.created = TRY(reader.string("created"));

    auto generation = TRY(reader.unsigned_number("generation"));
    if (generation != 1 && generation != 2)
        return fail("field 'generation' is {}, must be 1 or 2", generation);
    config.generation = generation == 1 ? vmm::Generation::One : vmm::Generation::Two;

    config.memory_bytes = TRY(reader.unsigned_number("memory_bytes"));
    if (auto valid = validate_memory(config.memory_bytes, 0); !valid)
        return fail("field 'memory_bytes': {}", valid.error().message());

    auto processors = TRY(reader.unsigned_number("processors"));
    if (processors < 1 || processors > max_processors(config.generation))
        return fail("field 'processors' is {}, a generation {} virtual machine has 1 to {}", processors, generation,
                    max_processors(config.generation));
    config.processors = static_cast<unsigned>(processors);

    config.kernel = TRY(reader.string("kernel"));
    config.initrd = TRY(reader.string("initrd"));
    config.cmdline = TRY(reader.string("cmdline"));

    auto* ports = TRY(reader.object("com_ports"));
    config.com[0] = TRY(read_com_port(*ports, "1"));
    config.com[1] = TRY(read_com_port(*ports, "2"));

    auto on_reset = TRY(reader.string("on_reset"));
    auto action = parse_reset_action(on_reset);
    if (!action)
        return fail("field 'on_reset': {}", action.error().message());
    config.on_reset = *action;
    config.integration_services = TRY(read_integration_services(root));
    TRY(read_scsi(root, config));
    return config;
}

} // namespace

std::string serialize_vm_config(const VmConfig& config)
{
    json ports = json::object();
    for (size_t i = 0; i < config.com.size(); ++i) {
        ports[fmt::format("{}", i + 1)] = {
            {"kind", std::string(to_string(config.com[i].kind))},
            {"path", config.com[i].path},
        };
    }
    json services = json::object();
    for (const auto& service : integration_service_list)
        services[std::string(service.config_key)] = config.integration_services.*service.enabled;
    json drives = json::array();
    for (const auto& drive : config.scsi_drives) {
        drives.push_back({
            {"type", std::string(to_string(drive.kind))},
            {"controller", drive.controller},
            {"location", drive.location},
            {"path", drive.path},
            {"read_only", drive.read_only},
        });
    }
    json root = {
        {"version", config_version},
        {"name", config.name},
        {"id", config.id},
        {"created", config.created},
        {"generation", static_cast<int>(config.generation)},
        {"memory_bytes", config.memory_bytes},
        {"processors", config.processors},
        {"kernel", config.kernel},
        {"initrd", config.initrd},
        {"cmdline", config.cmdline},
        {"com_ports", ports},
        {"on_reset", std::string(to_string(config.on_reset))},
        {"integration_services", services},
        {"scsi", {{"controllers", config.scsi_controllers}, {"drives", drives}}},
    };
    return root.dump(2) + "\n";
}

Result<VmConfig> parse_vm_config(std::string_view text, std::string_view file, std::string_view folder_name)
{
    auto in_file = [&](const Error& e) { return fail("config {}: {}", file, e.message()); };
    if (text.empty())
        return in_file(Error("the file is empty"));
    json root;
    try {
        root = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        // "[json.exception.parse_error.101] parse error at line 1, ..." -> "parse error at line 1, ..."
        std::string_view what = e.what();
        if (auto end = what.find("] "); what.starts_with("[json.exception") && end != std::string_view::npos)
            what.remove_prefix(end + 2);
        return in_file(Error::format("not valid JSON: {}", what));
    }
    auto config = parse_fields(root, folder_name);
    if (!config)
        return in_file(config.error());
    return config;
}

vmm::MachineConfig to_machine_config(const VmConfig& config)
{
    vmm::MachineConfig machine;
    machine.generation = config.generation;
    machine.memory_bytes = config.memory_bytes;
    machine.processors = config.processors;
    machine.kernel_path = config.kernel;
    machine.initrd_path = config.initrd;
    machine.cmdline = config.cmdline;
    machine.com = config.com;
    machine.on_reset = config.on_reset;
    machine.integration_services = config.integration_services;
    machine.vm_id = config.id;
    machine.scsi_controllers = config.scsi_controllers;
    machine.scsi_drives = config.scsi_drives;
    return machine;
}

std::string new_uuid()
{
    std::random_device device;
    std::array<uint8_t, 16> bytes{};
    for (size_t i = 0; i < bytes.size(); i += 4) {
        auto word = device();
        for (size_t j = 0; j < 4; ++j)
            bytes[i + j] = static_cast<uint8_t>(word >> (8 * j));
    }
    bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40); // version 4
    bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80); // RFC 4122 variant
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out += '-';
        out += fmt::format("{:02x}", bytes[i]);
    }
    return out;
}

bool is_uuid(std::string_view text)
{
    if (text.size() != 36)
        return false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

std::string utc_now_iso8601()
{
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

} // namespace vmgen::mgmt
