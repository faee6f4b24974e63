// Validation and parsing of the settings a user gives a virtual machine: names, memory sizes, processor
// counts, file paths and COM port targets. Shared by new-vm, set-vm, set-vmcomport and run, and by the
// config loader (which re-checks what it reads).
#pragma once

#include "support/result.h"
#include "vmm/machine_config.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace vmgen::mgmt {

constexpr uint64_t mib = 1ull << 20;
constexpr uint64_t memory_granularity_bytes = 2 * mib; // Hyper-V: startup memory is a multiple of 2 MB
constexpr uint64_t min_memory_bytes = 32 * mib;
constexpr unsigned max_processors_generation1 = 64;  // Hyper-V's limit for generation 1
constexpr unsigned max_processors_generation2 = 240; // Hyper-V's limit for generation 2
constexpr size_t max_name_length = 100;

// "512M", "2G", "1024MB", "4GiB", "536870912" (bytes). Units are binary (M = MiB) and case-insensitive.
Result<uint64_t> parse_memory_size(std::string_view text);
// 512 MiB -> "512M", 2 GiB -> "2G", otherwise bytes.
std::string format_memory_size(uint64_t bytes);

// Checks a memory size against Hyper-V's rules and the host: a multiple of 2 MiB, at least 32 MiB and
// at most host_memory_bytes (0: no host limit).
Result<void> validate_memory(uint64_t bytes, uint64_t host_memory_bytes);

// "1" or "2".
Result<vmm::Generation> parse_generation(std::string_view text);
[[nodiscard]] unsigned max_processors(vmm::Generation generation);
// A decimal count, 1..max_processors(generation).
Result<unsigned> parse_processors(std::string_view text, vmm::Generation generation);
Result<void> validate_processors(unsigned count, vmm::Generation generation);

// 1-100 characters, no '/', no control characters, not starting with '.'.
Result<void> validate_vm_name(std::string_view name);

// An existing, readable regular file; returns its absolute path.
Result<std::string> resolve_input_file(std::string_view path);

// "none", "stdio", "file:PATH", "unix:PATH"; file and socket paths are made absolute.
Result<vmm::SerialPortConfig> parse_com_port(std::string_view text);
// The inverse of parse_com_port.
std::string format_com_port(const vmm::SerialPortConfig& port);
std::string_view to_string(vmm::SerialPortConfig::Kind kind);
Result<vmm::SerialPortConfig::Kind> parse_com_port_kind(std::string_view text);

// "restart" or "exit".
Result<vmm::ResetAction> parse_reset_action(std::string_view text);
std::string_view to_string(vmm::ResetAction action);

// The integration services of a virtual machine (Hyper-V's Get-/Enable-/Disable-VMIntegrationService), in
// Hyper-V's order. `name` is Hyper-V's, `config_key` the key in config.json's "integration_services".
struct IntegrationServiceInfo {
    std::string_view name;
    std::string_view config_key;
    bool vmm::IntegrationServices::*enabled;
};
inline constexpr std::array<IntegrationServiceInfo, 6> integration_service_list = {{
    {"Guest Service Interface", "guest_service_interface", &vmm::IntegrationServices::guest_service_interface},
    {"Heartbeat", "heartbeat", &vmm::IntegrationServices::heartbeat},
    {"Key-Value Pair Exchange", "key_value_pair_exchange", &vmm::IntegrationServices::key_value_pair_exchange},
    {"Shutdown", "shutdown", &vmm::IntegrationServices::shutdown},
    {"Time Synchronization", "time_synchronization", &vmm::IntegrationServices::time_synchronization},
    {"VSS", "vss", &vmm::IntegrationServices::vss},
}};
// Hyper-V's service name, case-insensitively ("time synchronization"); the error lists the valid names.
Result<const IntegrationServiceInfo*> find_integration_service(std::string_view name);

// MemTotal from /proc/meminfo in bytes (0 when unreadable: no host limit is applied).
uint64_t host_memory_total();

} // namespace vmgen::mgmt
