#include "vmm/machine.h"

namespace vmgen::vmm {

int exit_status(const RunOutcome& outcome)
{
    switch (outcome.reason) {
    case StopReason::PowerOff:
    case StopReason::TurnedOff:
        return 0;
    case StopReason::Reset:
        return 3;
    case StopReason::TripleFault:
        return 4;
    case StopReason::InternalError:
        return 5;
    }
    return 5;
}

std::string_view to_string(StopReason reason)
{
    switch (reason) {
    case StopReason::PowerOff:
        return "power-off";
    case StopReason::Reset:
        return "reset";
    case StopReason::TripleFault:
        return "triple-fault";
    case StopReason::InternalError:
        return "internal-error";
    case StopReason::TurnedOff:
        return "turned-off";
    }
    return "unknown";
}

std::string_view to_string(HeartbeatState state)
{
    switch (state) {
    case HeartbeatState::Disabled:
        return "Disabled";
    case HeartbeatState::NoContact:
        return "No Contact";
    case HeartbeatState::Ok:
        return "OK";
    case HeartbeatState::LostCommunication:
        return "Lost Communication";
    }
    return "Unknown";
}

} // namespace vmgen::vmm
