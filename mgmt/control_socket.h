// The worker's control socket: a unix stream socket carrying one JSON request per line and one JSON reply
// per line.
//
//   {"op":"status"}    -> {"ok":true,"state":"Running","uptime_ns":…,"vcpu_cpu_time_ns":…,"memory_bytes":…,
//                          "cpu_usage_percent":…,"processors":…,"resets":…,"heartbeat":"OK","pid":…}
//   {"op":"turn-off"}  -> {"ok":true}   pulls the power
//   {"op":"shutdown"}  -> {"ok":true}   presses the ACPI power button
//   anything else      -> {"ok":false,"error":"…"}
//
// Socket paths longer than sun_path are reached through /proc/self/fd/<folder fd>/<file>.
#pragma once

#include "support/result.h"
#include "support/unique_fd.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

namespace vmgen::mgmt {

class ControlServer {
public:
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Binds `path` (replacing a stale socket file) and serves requests on a thread of its own. `tick` runs on
    // that thread every `interval` (the worker samples CPU usage there).
    static Result<std::unique_ptr<ControlServer>> start(std::filesystem::path path, Handler handler,
                                                        std::function<void()> tick,
                                                        std::chrono::milliseconds interval);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Stops serving and removes the socket file. Idempotent.
    void stop();

private:
    ControlServer(std::filesystem::path path, UniqueFd listener, UniqueFd wakeup, Handler handler,
                  std::function<void()> tick, std::chrono::milliseconds interval);
    void serve();
    void serve_connection(int fd);

    std::filesystem::path m_path;
    UniqueFd m_listener;
    UniqueFd m_wakeup; // eventfd: stop() wakes the serving thread
    Handler m_handler;
    std::function<void()> m_tick;
    std::chrono::milliseconds m_interval;
    std::atomic<bool> m_stopping{false};
    std::thread m_thread;
};

// Sends one request and waits up to `timeout` for its reply. Fails when nothing listens, the worker does
// not answer in time or the reply is not JSON.
Result<nlohmann::json> control_request(const std::filesystem::path& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout);

} // namespace vmgen::mgmt
