#include "mgmt/runtime_state.h"

#include "mgmt/atomic_file.h"
#include "mgmt/control_socket.h"

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>

namespace vmgen::mgmt {

using nlohmann::json;

std::string_view to_string(VmState state)
{
    switch (state) {
    case VmState::Off:
        return "Off";
    case VmState::Starting:
        return "Starting";
    case VmState::Running:
        return "Running";
    case VmState::Stopping:
        return "Stopping";
    }
    return "Off";
}

std::string serialize_last_exit(const LastExit& last_exit)
{
    json root = {
        {"reason", last_exit.reason}, {"exit_status", last_exit.exit_status}, {"detail", last_exit.detail},
        {"time", last_exit.time},     {"signal", last_exit.signal},
    };
    return root.dump(2) + "\n";
}

Result<LastExit> parse_last_exit(std::string_view text)
{
    json root;
    try {
        root = json::parse(text.begin(), text.end());
    } catch (const json::exception&) {
        return fail("not valid JSON");
    }
    if (!root.is_object())
        return fail("not a JSON object");
    LastExit out;
    auto reason = root.find("reason");
    if (reason == root.end() || !reason->is_string())
        return fail("field 'reason' is missing or not a string");
    out.reason = reason->get<std::string>();
    auto status = root.find("exit_status");
    if (status == root.end() || !status->is_number_integer())
        return fail("field 'exit_status' is missing or not a whole number");
    out.exit_status = static_cast<int>(status->get<int64_t>());
    if (auto detail = root.find("detail"); detail != root.end() && detail->is_string())
        out.detail = detail->get<std::string>();
    if (auto time = root.find("time"); time != root.end() && time->is_string())
        out.time = time->get<std::string>();
    if (auto signal = root.find("signal"); signal != root.end() && signal->is_number_integer())
        out.signal = static_cast<int>(signal->get<int64_t>());
    return out;
}

Result<void> write_last_exit(const std::filesystem::path& dir, const LastExit& last_exit)
{
    return write_file_atomically(dir / last_exit_file, serialize_last_exit(last_exit));
}

Result<std::optional<LastExit>> read_last_exit(const std::filesystem::path& dir)
{
    auto path = dir / last_exit_file;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        return std::optional<LastExit>{};
    auto text = TRY(read_small_file(path));
    auto parsed = parse_last_exit(text);
    if (!parsed)
        return fail("{}: {}", path.string(), parsed.error().message());
    return std::optional<LastExit>(std::move(*parsed));
}

std::string describe_guest_crash(const std::array<uint64_t, 5>& params)
{
    return fmt::format("The guest operating system reported that it failed with the following error codes: "
                       "ErrorCode0: {:#x}, ErrorCode1: {:#x}, ErrorCode2: {:#x}, ErrorCode3: {:#x}, ErrorCode4: {:#x}",
                       params[0], params[1], params[2], params[3], params[4]);
}

std::string describe_last_exit(const LastExit& last_exit)
{
    auto with_detail = [&](std::string_view what) {
        return last_exit.detail.empty() ? std::string(what) : fmt::format("{}: {}", what, last_exit.detail);
    };
    const auto& reason = last_exit.reason;
    if (reason == "power-off" || reason == "turned-off" || reason == "reset")
        return normal_status;
    if (reason == "guest-crashed")
        return last_exit.detail;
    if (reason == "triple-fault")
        return with_detail("The guest triple-faulted");
    if (reason == "internal-error")
        return with_detail("The virtual machine stopped on an internal error");
    if (reason == "start-failed")
        return with_detail("The virtual machine failed to start");
    if (reason == "error")
        return with_detail("The worker process failed");
    if (reason == "killed") {
        if (last_exit.signal != 0)
            return with_detail(fmt::format("The worker process exited unexpectedly (killed by signal {}, {})",
                                           last_exit.signal, ::strsignal(last_exit.signal)));
        return with_detail("The worker process exited unexpectedly (killed)");
    }
    return with_detail(fmt::format("The virtual machine stopped ({})", reason));
}

bool is_worker_process(pid_t pid, std::string_view name)
{
    if (pid <= 0)
        return false;
    auto text = read_small_file(fmt::format("/proc/{}/cmdline", pid), 64 * 1024);
    if (!text)
        return false;
    // argv is NUL-separated: <exe> __worker <name>
    std::string_view rest = *text;
    std::string_view args[3];
    for (auto& arg : args) {
        auto nul = rest.find('\0');
        if (nul == std::string_view::npos)
            return false;
        arg = rest.substr(0, nul);
        rest.remove_prefix(nul + 1);
    }
    return args[1] == "__worker" && args[2] == name;
}

std::optional<pid_t> read_worker_pid(const std::filesystem::path& dir)
{
    auto text = read_small_file(dir / worker_pid_file, 64);
    if (!text)
        return std::nullopt;
    long long value = 0;
    size_t digits = 0;
    for (char c : *text) {
        if (c == '\n')
            break;
        if (c < '0' || c > '9' || value > 1'000'000'000)
            return std::nullopt;
        value = value * 10 + (c - '0');
        ++digits;
    }
    if (digits == 0 || value <= 0)
        return std::nullopt;
    return static_cast<pid_t>(value);
}

VmRuntime inspect_runtime(const std::filesystem::path& dir, std::string_view name, const WorkerProbe& probe,
                          std::chrono::milliseconds control_timeout)
{
    VmRuntime runtime;
    auto last_exit = read_last_exit(dir);
    auto pid = read_worker_pid(dir);
    std::error_code ec;
    bool pid_file = std::filesystem::exists(dir / worker_pid_file, ec);

    if (pid && probe(*pid, name)) {
        runtime.pid = *pid;
        auto socket = dir / control_socket_file;
        if (!std::filesystem::exists(socket, ec)) {
            // Before the machine exists the worker has no socket yet; after it stopped it writes last-exit.json
            // and then goes away.
            bool stopped = last_exit && last_exit->has_value();
            runtime.state = stopped ? VmState::Stopping : VmState::Starting;
            return runtime;
        }
        auto reply = control_request(socket, json{{"op", "status"}}, control_timeout);
        runtime.state = VmState::Running;
        if (!reply || !reply->is_object() || !reply->value("ok", false)) {
            runtime.status = reply ? "The worker process gave an invalid status reply"
                                   : "The worker process is not responding on its control socket";
            return runtime;
        }
        const auto& r = *reply;
        auto state = r.value("state", std::string("Running"));
        if (state == "Stopping")
            runtime.state = VmState::Stopping;
        else if (state == "Starting")
            runtime.state = VmState::Starting;
        runtime.uptime = std::chrono::nanoseconds(r.value("uptime_ns", int64_t{0}));
        runtime.memory_assigned_bytes = r.value("memory_bytes", uint64_t{0});
        runtime.cpu_usage_percent = r.value("cpu_usage_percent", 0u);
        if (auto heartbeat = r.find("heartbeat"); heartbeat != r.end() && heartbeat->is_string())
            runtime.heartbeat = heartbeat->get<std::string>();
        if (auto shutdown = r.find("shutdown_service"); shutdown != r.end() && shutdown->is_string())
            runtime.shutdown_service = shutdown->get<std::string>();
        if (auto crash = r.find("guest_crash"); crash != r.end() && crash->is_array() && crash->size() == 5) {
            std::array<uint64_t, 5> params{};
            bool numbers = true;
            for (size_t i = 0; i < 5; ++i) {
                numbers = numbers && (*crash)[i].is_number_unsigned();
                if (numbers)
                    params[i] = (*crash)[i].get<uint64_t>();
            }
            if (numbers)
                runtime.status = describe_guest_crash(params);
        }
        return runtime;
    }

    if (pid_file) {
        // The worker removes worker.pid when it ends; a file naming a dead process means it died abruptly.
        if (last_exit && last_exit->has_value() && (*last_exit)->reason == "killed") {
            runtime.status = describe_last_exit(**last_exit);
            return runtime;
        }
        runtime.status = pid ? fmt::format("The worker process exited unexpectedly (pid {} is gone; it was "
                                           "killed or crashed before it could report)",
                                           *pid)
                             : "The worker process exited unexpectedly (worker.pid is unreadable)";
        return runtime;
    }
    if (!last_exit) {
        runtime.status = fmt::format("The last exit report is unreadable: {}", last_exit.error().message());
        return runtime;
    }
    if (last_exit->has_value())
        runtime.status = describe_last_exit(**last_exit);
    return runtime;
}

} // namespace vmgen::mgmt
