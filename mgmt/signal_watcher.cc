#include "mgmt/signal_watcher.h"
#include "support/errno_error.h"

#include "support/log.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace vmgen::mgmt {
namespace {

sigset_t watched_signals()
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

} // namespace

SignalWatcher::SignalWatcher(std::function<void(int)> on_signal) : m_on_signal(std::move(on_signal))
{
    auto set = watched_signals();
    pthread_sigmask(SIG_BLOCK, &set, &m_previous);
    // The thread sleeps in poll() on the signals and on a stop eventfd: no timeout, so neither a signal
    // nor the destructor waits for a polling tick.
    m_signal_fd = ::signalfd(-1, &set, SFD_CLOEXEC);
    m_stop_fd = ::eventfd(0, EFD_CLOEXEC);
    if (m_signal_fd < 0 || m_stop_fd < 0) {
        log_error("signals", "cannot watch SIGINT/SIGTERM: {}", errno_text(errno));
        return;
    }
    m_thread = std::thread([this] {
        for (;;) {
            pollfd fds[2] = {{m_signal_fd, POLLIN, 0}, {m_stop_fd, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                return;
            }
            if (fds[1].revents != 0)
                return;
            signalfd_siginfo info{};
            if (::read(m_signal_fd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info)) && m_on_signal)
                m_on_signal(static_cast<int>(info.ssi_signo));
        }
    });
}

SignalWatcher::~SignalWatcher()
{
    if (m_stop_fd >= 0) {
        uint64_t one = 1;
        auto written = ::write(m_stop_fd, &one, sizeof(one));
        (void)written;
    }
    if (m_thread.joinable())
        m_thread.join();
    if (m_signal_fd >= 0)
        ::close(m_signal_fd);
    if (m_stop_fd >= 0)
        ::close(m_stop_fd);
    // Consume what arrived after the thread stopped rather than dying of it when the mask is restored.
    auto set = watched_signals();
    const timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &m_previous, nullptr);
}

} // namespace vmgen::mgmt
