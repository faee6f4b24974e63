#include "vm/devices/serial16550/backends.h"

#include "support/errno_error.h"
#include "support/log.h"
#include "support/thread_name.h"
#include "support/unique_fd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

namespace vmgen::vm {

namespace {

// Writes all of `bytes` to `fd`; returns false (errno set) on an error other than EINTR.
bool write_all(int fd, std::span<const uint8_t> bytes)
{
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
    return true;
}

class FdSerialBackend final : public SerialBackend {
public:
    FdSerialBackend(UniqueFd owned, int fd, std::string what)
        : m_owned(std::move(owned))
        , m_fd(fd)
        , m_what(std::move(what))
    {
    }

    void write_bytes(std::span<const uint8_t> bytes) override
    {
        if (!write_all(m_fd, bytes) && !m_warned.exchange(true))
            log_warn(
                "serial", "writing guest output to {}: {}; further errors are not reported", m_what, errno_text(errno));
    }

private:
    UniqueFd m_owned; // invalid for stdout
    int m_fd;
    std::string m_what;
    std::atomic<bool> m_warned { false };
};

class UnixSerialEndpoint final : public SerialEndpoint {
public:
    UnixSerialEndpoint(std::string path, Serial16550& uart, UniqueFd listener, UniqueFd wake)
        : m_path(std::move(path))
        , m_uart(uart)
        , m_listener(std::move(listener))
        , m_wake(std::move(wake))
    {
    }

    ~UnixSerialEndpoint() override
    {
        m_uart.set_backend(nullptr);
        const uint64_t one = 1;
        if (::write(m_wake.get(), &one, sizeof(one)) < 0)
            log_warn("serial", "waking the {} thread: {}", m_path, errno_text(errno));
        if (m_thread.joinable())
            m_thread.join();
        ::unlink(m_path.c_str());
    }

    UnixSerialEndpoint(const UnixSerialEndpoint&) = delete;
    UnixSerialEndpoint& operator=(const UnixSerialEndpoint&) = delete;

    void start()
    {
        m_uart.set_backend(this);
        m_thread = std::thread([this] {
            set_thread_name("serial-in");
            run();
        });
    }

    [[nodiscard]] const std::string& path() const override { return m_path; }

    [[nodiscard]] bool client_connected() const override
    {
        std::lock_guard lock(m_client_lock);
        return m_client.valid();
    }

    void write_bytes(std::span<const uint8_t> bytes) override
    {
        std::lock_guard lock(m_client_lock);
        if (!m_client.valid())
            return; // nobody listening: the output is lost, as on an unplugged cable
        while (!bytes.empty()) {
            const ssize_t n = ::send(m_client.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                // A stalled client (send timeout) or a closed one: drop the output; the reader thread
                // notices a closed connection and goes back to accepting.
                log_debug(
                    "serial", "sending to {} client: {}; {} bytes dropped", m_path, errno_text(errno), bytes.size());
                return;
            }
            bytes = bytes.subspan(static_cast<size_t>(n));
        }
    }

private:
    // Waits for `fd` to become readable or for the stop request. Returns false on stop.
    [[nodiscard]] bool wait_readable(int fd)
    {
        for (;;) {
            std::array<pollfd, 2> fds { { { fd, POLLIN, 0 }, { m_wake.get(), POLLIN, 0 } } };
            const int n = ::poll(fds.data(), fds.size(), -1);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                log_error("serial", "poll on {}: {}", m_path, errno_text(errno));
                return false;
            }
            if (fds[1].revents != 0)
                return false;
            if (fds[0].revents != 0)
                return true;
        }
    }

    // Sleeps for `ms` unless a stop is requested. Returns false on stop.
    [[nodiscard]] bool pause(int ms)
    {
        pollfd wake { m_wake.get(), POLLIN, 0 };
        const int n = ::poll(&wake, 1, ms);
        return !(n > 0 && wake.revents != 0);
    }

    // Feeds `bytes` into the UART, waiting while its receiver is full. Returns false on stop.
    [[nodiscard]] bool feed(std::span<const uint8_t> bytes)
    {
        while (!bytes.empty()) {
            const size_t n = m_uart.receive(bytes);
            bytes = bytes.subspan(n);
            if (n == 0 && !pause(2))
                return false;
        }
        return true;
    }

    void serve(int fd)
    {
        std::array<uint8_t, 256> buf {};
        while (wait_readable(fd)) {
            const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n < 0)
                    log_debug("serial", "reading from {} client: {}", m_path, errno_text(errno));
                return; // client gone
            }
            if (!feed(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n))))
                return;
        }
    }

    void run()
    {
        while (wait_readable(m_listener.get())) {
            UniqueFd client(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!client.valid()) {
                if (errno != EINTR && errno != ECONNABORTED) {
                    log_warn("serial", "accepting on {}: {}", m_path, errno_text(errno));
                    if (!pause(100))
                        return;
                }
                continue;
            }
            // A client that stops reading must not stall the guest for long.
            const timeval timeout { 1, 0 };
            if (::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0)
                log_debug("serial", "SO_SNDTIMEO on {} client: {}", m_path, errno_text(errno));
            const int fd = client.get();
            {
                std::lock_guard lock(m_client_lock);
                m_client = std::move(client);
            }
            log_info("serial", "client connected to {}", m_path);
            serve(fd);
            {
                std::lock_guard lock(m_client_lock);
                m_client.reset();
            }
            log_info("serial", "client disconnected from {}", m_path);
        }
    }

    std::string m_path;
    Serial16550& m_uart;
    UniqueFd m_listener;
    UniqueFd m_wake;
    mutable std::mutex m_client_lock;
    UniqueFd m_client;
    std::thread m_thread;
};

} // namespace

Result<std::unique_ptr<SerialBackend>> open_serial_file(const std::string& path)
{
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("opening serial output file {}", path));
    const int raw = fd.get();
    return std::unique_ptr<SerialBackend>(std::make_unique<FdSerialBackend>(std::move(fd), raw, path));
}

std::unique_ptr<SerialBackend> stdio_serial_backend()
{
    return std::make_unique<FdSerialBackend>(UniqueFd(), STDOUT_FILENO, "stdout");
}

Result<std::unique_ptr<SerialEndpoint>> listen_serial_unix(const std::string& path, Serial16550& uart)
{
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return fail("serial socket path '{}' is empty or longer than {} bytes", path, sizeof(addr.sun_path) - 1);
    std::memcpy(addr.sun_path, path.data(), path.size());

    // Replace a stale socket left by an earlier run, but never another kind of file.
    struct stat st { };
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail("serial socket path {} exists and is not a socket", path);
        if (::unlink(path.c_str()) < 0)
            return errno_failure(fmt::format("removing stale serial socket {}", path));
    }

    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener.valid())
        return errno_failure("creating serial socket");
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0)
        return errno_failure(fmt::format("binding serial socket {}", path));
    if (::listen(listener.get(), 1) < 0) {
        const int err = errno;
        ::unlink(path.c_str());
        return errno_failure(fmt::format("listening on serial socket {}", path), err);
    }
    UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake.valid()) {
        const int err = errno;
        ::unlink(path.c_str());
        return errno_failure("creating serial socket eventfd", err);
    }
    auto endpoint = std::make_unique<UnixSerialEndpoint>(path, uart, std::move(listener), std::move(wake));
    endpoint->start();
    return std::unique_ptr<SerialEndpoint>(std::move(endpoint));
}

} // namespace vmgen::vm
