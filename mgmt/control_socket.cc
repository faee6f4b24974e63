#include "mgmt/control_socket.h"

#include "support/errno_error.h"
#include "support/log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmgen::mgmt {
namespace {

constexpr size_t max_line = 4096;

// A sockaddr_un for `path`; when the path does not fit, `dir_fd` keeps the folder open and the address goes
// through /proc/self/fd.
Result<sockaddr_un> make_address(const std::filesystem::path& path, UniqueFd& dir_fd)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string text = path.string();
    if (text.size() >= sizeof addr.sun_path) {
        dir_fd.reset(::open(path.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!dir_fd.valid())
            return errno_failure(fmt::format("opening {}", path.parent_path().string()));
        text = fmt::format("/proc/self/fd/{}/{}", dir_fd.get(), path.filename().string());
        if (text.size() >= sizeof addr.sun_path)
            return fail("socket name {} is too long", path.filename().string());
    }
    std::memcpy(addr.sun_path, text.data(), text.size());
    return addr;
}

void set_timeouts(int fd, std::chrono::milliseconds timeout)
{
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// Reads one line (without '\n') into `line`, keeping what follows in `buffer`. False on EOF, error or timeout.
bool read_line(int fd, std::string& buffer, std::string& line)
{
    for (;;) {
        if (auto newline = buffer.find('\n'); newline != std::string::npos) {
            line = buffer.substr(0, newline);
            buffer.erase(0, newline + 1);
            return true;
        }
        if (buffer.size() > max_line)
            return false;
        char chunk[1024];
        auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buffer.append(chunk, static_cast<size_t>(n));
    }
}

} // namespace

ControlServer::ControlServer(std::filesystem::path path, UniqueFd listener, UniqueFd wakeup, Handler handler,
                             std::function<void()> tick, std::chrono::milliseconds interval)
    : m_path(std::move(path))
    , m_listener(std::move(listener))
    , m_wakeup(std::move(wakeup))
    , m_handler(std::move(handler))
    , m_tick(std::move(tick))
    , m_interval(interval)
{
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(std::filesystem::path path, Handler handler,
                                                            std::function<void()> tick,
                                                            std::chrono::milliseconds interval)
{
    UniqueFd dir_fd;
    auto addr = TRY(make_address(path, dir_fd));
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener.valid())
        return errno_failure("socket");
    ::unlink(path.c_str());
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return errno_failure(fmt::format("binding {}", path.string()));
    if (::listen(listener.get(), 16) != 0)
        return errno_failure(fmt::format("listening on {}", path.string()));
    UniqueFd wakeup(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wakeup.valid())
        return errno_failure("eventfd");
    std::unique_ptr<ControlServer> server(new ControlServer(std::move(path), std::move(listener), std::move(wakeup),
                                                            std::move(handler), std::move(tick), interval));
    server->m_thread = std::thread([raw = server.get()] { raw->serve(); });
    return server;
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop()
{
    if (m_stopping.exchange(true))
        return;
    uint64_t one = 1;
    auto written = ::write(m_wakeup.get(), &one, sizeof one);
    (void)written;
    if (m_thread.joinable())
        m_thread.join();
    m_listener.reset();
    ::unlink(m_path.c_str());
}

void ControlServer::serve()
{
    auto next_tick = std::chrono::steady_clock::now() + m_interval;
    while (!m_stopping.load()) {
        pollfd fds[2] = {{m_listener.get(), POLLIN, 0}, {m_wakeup.get(), POLLIN, 0}};
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - std::chrono::steady_clock::now());
        int ready = ::poll(fds, 2, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
        if (ready < 0 && errno != EINTR) {
            log_error("control", "poll: {}", errno_text(errno));
            return;
        }
        if (std::chrono::steady_clock::now() >= next_tick) {
            if (m_tick)
                m_tick();
            next_tick = std::chrono::steady_clock::now() + m_interval;
        }
        if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
            UniqueFd connection(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (connection.valid())
                serve_connection(connection.get());
        }
    }
}

void ControlServer::serve_connection(int fd)
{
    set_timeouts(fd, std::chrono::milliseconds(2000));
    std::string buffer;
    std::string line;
    while (!m_stopping.load() && read_line(fd, buffer, line)) {
        nlohmann::json reply;
        try {
            auto request = nlohmann::json::parse(line);
            reply = m_handler(request);
        } catch (const nlohmann::json::exception& e) {
            reply = {{"ok", false}, {"error", fmt::format("bad request: {}", e.what())}};
        }
        if (!send_all(fd, reply.dump() + "\n"))
            return;
    }
}

Result<nlohmann::json> control_request(const std::filesystem::path& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout)
{
    UniqueFd dir_fd;
    auto addr = TRY(make_address(path, dir_fd));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return errno_failure("socket");
    set_timeouts(fd.get(), timeout);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return errno_failure(fmt::format("connecting to {}", path.string()));
    if (!send_all(fd.get(), request.dump() + "\n"))
        return errno_failure(fmt::format("sending to {}", path.string()));
    std::string buffer;
    std::string line;
    if (!read_line(fd.get(), buffer, line))
        return fail("{}: the worker did not answer within {} ms", path.string(), timeout.count());
    try {
        return nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
        return fail("{}: the reply is not JSON: {}", path.string(), e.what());
    }
}

} // namespace vmgen::mgmt
