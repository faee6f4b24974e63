// vmgen: the command line (docs/cli.md). Everything but process setup lives in mgmt/cli.
#include "mgmt/cli.h"
#include "vmm/machine.h"

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv)
{
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i)
        args.emplace_back(argv[i]);
    auto context = vmgen::mgmt::default_cli_context(
        [](const vmgen::vmm::MachineConfig& config) { return vmgen::vmm::Machine::create(config); });
    int status = vmgen::mgmt::run_cli(args, std::cout, std::cerr, context);
    std::cout.flush();
    return status;
}
