#include "mgmt/signal_watcher.h"

#include <pthread.h>

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
    m_thread = std::thread([this] {
        auto signals = watched_signals();
        const timespec timeout{0, 100'000'000};
        while (!m_stop.load()) {
            int signal = sigtimedwait(&signals, nullptr, &timeout);
            if (signal > 0 && m_on_signal)
                m_on_signal(signal);
        }
    });
}

SignalWatcher::~SignalWatcher()
{
    m_stop.store(true);
    if (m_thread.joinable())
        m_thread.join();
    // Consume what arrived after the thread stopped rather than dying of it when the mask is restored.
    auto set = watched_signals();
    const timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &m_previous, nullptr);
}

} // namespace vmgen::mgmt
