// libFuzzer target: a VM's config.json is a file on disk, so hostile input. parse_vm_config must reject
// anything malformed with an error (never crash), and whatever it accepts must survive a serialize/parse
// round trip unchanged.
#include "mgmt/vm_config.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = vmgen::mgmt::parse_vm_config(text, "config.json", "fuzz");
    if (!config)
        return 0;
    auto again = vmgen::mgmt::parse_vm_config(vmgen::mgmt::serialize_vm_config(*config), "config.json", "fuzz");
    if (!again || vmgen::mgmt::serialize_vm_config(*again) != vmgen::mgmt::serialize_vm_config(*config))
        std::abort(); // an accepted config must round-trip
    return 0;
}
