#include "mgmt/vm_settings.h"
#include "support/errno_error.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace vmgen::mgmt {
namespace {

std::string lower(std::string_view text)
{
    std::string out(text);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool all_digits(std::string_view text)
{
    if (text.empty())
        return false;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
    }
    return true;
}

Result<uint64_t> parse_decimal(std::string_view text)
{
    if (!all_digits(text))
        return fail("'{}' is not a number", text);
    uint64_t value = 0;
    for (char c : text) {
        auto digit = static_cast<uint64_t>(c - '0');
        if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10)
            return fail("'{}' is too large", text);
        value = value * 10 + digit;
    }
    return value;
}

std::string absolute_path(std::string_view path)
{
    std::error_code ec;
    auto abs = std::filesystem::absolute(std::filesystem::path(path), ec);
    if (ec)
        return std::string(path);
    return abs.lexically_normal().string();
}

} // namespace

Result<uint64_t> parse_memory_size(std::string_view text)
{
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    if (digits == 0)
        return fail("invalid memory size '{}': expected a number with an optional unit (512M, 2G, 1024MB)", text);
    auto unit = lower(text.substr(digits));
    unsigned shift = 0;
    if (unit.empty() || unit == "b")
        shift = 0;
    else if (unit == "k" || unit == "kb" || unit == "kib")
        shift = 10;
    else if (unit == "m" || unit == "mb" || unit == "mib")
        shift = 20;
    else if (unit == "g" || unit == "gb" || unit == "gib")
        shift = 30;
    else if (unit == "t" || unit == "tb" || unit == "tib")
        shift = 40;
    else
        return fail("invalid memory size '{}': unknown unit '{}' (use K, M, G or T)", text, text.substr(digits));
    auto number = parse_decimal(text.substr(0, digits));
    if (!number)
        return fail("invalid memory size '{}': the number is too large", text);
    if (*number > (std::numeric_limits<uint64_t>::max() >> shift))
        return fail("invalid memory size '{}': the size is too large", text);
    return *number << shift;
}

std::string format_memory_size(uint64_t bytes)
{
    if (bytes != 0 && bytes % (1ull << 30) == 0)
        return fmt::format("{}G", bytes >> 30);
    if (bytes != 0 && bytes % mib == 0)
        return fmt::format("{}M", bytes >> 20);
    return fmt::format("{}", bytes);
}

Result<void> validate_memory(uint64_t bytes, uint64_t host_memory_bytes)
{
    if (bytes < min_memory_bytes)
        return fail("memory {} is too small: a virtual machine needs at least 32M", format_memory_size(bytes));
    if (bytes % memory_granularity_bytes != 0)
        return fail("memory {} is not a multiple of 2M", format_memory_size(bytes));
    if (host_memory_bytes != 0 && bytes > host_memory_bytes)
        return fail("memory {} is more than the host has ({}M)", format_memory_size(bytes), host_memory_bytes >> 20);
    return {};
}

Result<vmm::Generation> parse_generation(std::string_view text)
{
    if (text == "1")
        return vmm::Generation::One;
    if (text == "2")
        return vmm::Generation::Two;
    return fail("invalid generation '{}': must be 1 or 2", text);
}

unsigned max_processors(vmm::Generation generation)
{
    return generation == vmm::Generation::One ? max_processors_generation1 : max_processors_generation2;
}

Result<void> validate_processors(unsigned count, vmm::Generation generation)
{
    auto limit = max_processors(generation);
    if (count < 1 || count > limit)
        return fail("invalid processor count {}: a generation {} virtual machine has 1 to {} processors", count,
                    static_cast<int>(generation), limit);
    return {};
}

Result<unsigned> parse_processors(std::string_view text, vmm::Generation generation)
{
    auto value = parse_decimal(text);
    if (!value)
        return fail("invalid processor count '{}': expected a number", text);
    auto limit = max_processors(generation);
    if (*value < 1 || *value > limit)
        return fail("invalid processor count {}: a generation {} virtual machine has 1 to {} processors", text,
                    static_cast<int>(generation), limit);
    return static_cast<unsigned>(*value);
}

Result<void> validate_vm_name(std::string_view name)
{
    if (name.empty())
        return fail("invalid virtual machine name: the name is empty");
    if (name.size() > max_name_length)
        return fail("invalid virtual machine name: {} characters, at most {} are allowed", name.size(),
                    max_name_length);
    if (name.front() == '.')
        return fail("invalid virtual machine name '{}': it must not start with '.'", name);
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (c == '/')
            return fail("invalid virtual machine name '{}': it must not contain '/'", name);
        if (u < 0x20 || u == 0x7f)
            return fail("invalid virtual machine name: it must not contain control characters");
    }
    return {};
}

Result<std::string> resolve_input_file(std::string_view path)
{
    if (path.empty())
        return fail("the file name is empty");
    std::string p(path);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0)
        return fail("{}: {}", p, errno_text(errno));
    if (!S_ISREG(st.st_mode))
        return fail("{}: not a regular file", p);
    if (::access(p.c_str(), R_OK) != 0)
        return fail("{}: {}", p, errno_text(errno));
    return absolute_path(path);
}

std::string_view to_string(vmm::SerialPortConfig::Kind kind)
{
    switch (kind) {
    case vmm::SerialPortConfig::Kind::None:
        return "none";
    case vmm::SerialPortConfig::Kind::Stdio:
        return "stdio";
    case vmm::SerialPortConfig::Kind::File:
        return "file";
    case vmm::SerialPortConfig::Kind::UnixSocket:
        return "unix";
    }
    return "none";
}

Result<vmm::SerialPortConfig::Kind> parse_com_port_kind(std::string_view text)
{
    if (text == "none")
        return vmm::SerialPortConfig::Kind::None;
    if (text == "stdio")
        return vmm::SerialPortConfig::Kind::Stdio;
    if (text == "file")
        return vmm::SerialPortConfig::Kind::File;
    if (text == "unix")
        return vmm::SerialPortConfig::Kind::UnixSocket;
    return fail("unknown COM port kind '{}' (none, stdio, file, unix)", text);
}

Result<vmm::SerialPortConfig> parse_com_port(std::string_view text)
{
    vmm::SerialPortConfig port;
    if (text == "none" || text == "stdio") {
        port.kind = *parse_com_port_kind(text);
        return port;
    }
    auto colon = text.find(':');
    if (colon != std::string_view::npos) {
        auto kind = text.substr(0, colon);
        auto path = text.substr(colon + 1);
        if (kind == "file" || kind == "unix") {
            if (path.empty())
                return fail("invalid COM port '{}': the path is empty", text);
            port.kind = kind == "file" ? vmm::SerialPortConfig::Kind::File : vmm::SerialPortConfig::Kind::UnixSocket;
            port.path = absolute_path(path);
            auto parent = std::filesystem::path(port.path).parent_path();
            std::error_code ec;
            if (!std::filesystem::is_directory(parent, ec))
                return fail("invalid COM port '{}': directory {} does not exist", text, parent.string());
            return port;
        }
    }
    return fail("invalid COM port '{}': expected file:PATH, unix:PATH, stdio or none", text);
}

std::string format_com_port(const vmm::SerialPortConfig& port)
{
    switch (port.kind) {
    case vmm::SerialPortConfig::Kind::None:
    case vmm::SerialPortConfig::Kind::Stdio:
        return std::string(to_string(port.kind));
    case vmm::SerialPortConfig::Kind::File:
    case vmm::SerialPortConfig::Kind::UnixSocket:
        return fmt::format("{}:{}", to_string(port.kind), port.path);
    }
    return "none";
}

Result<vmm::ResetAction> parse_reset_action(std::string_view text)
{
    if (text == "restart")
        return vmm::ResetAction::Restart;
    if (text == "exit")
        return vmm::ResetAction::Exit;
    return fail("invalid reset action '{}': must be restart or exit", text);
}

std::string_view to_string(vmm::ResetAction action)
{
    return action == vmm::ResetAction::Exit ? "exit" : "restart";
}

Result<const IntegrationServiceInfo*> find_integration_service(std::string_view name)
{
    auto wanted = lower(name);
    for (const auto& service : integration_service_list) {
        if (lower(service.name) == wanted)
            return &service;
    }
    std::string valid;
    for (const auto& service : integration_service_list)
        valid += fmt::format("{}'{}'", valid.empty() ? "" : ", ", service.name);
    return fail("unknown integration service '{}': the services are {}", name, valid);
}

uint64_t host_memory_total()
{
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t value = 0;
    std::string unit;
    while (in >> key >> value) {
        std::getline(in, unit);
        if (key == "MemTotal:")
            return value * 1024;
    }
    return 0;
}

} // namespace vmgen::mgmt
