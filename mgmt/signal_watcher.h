// SignalWatcher: turns SIGINT and SIGTERM into a callback on a thread of its own.
//
// Construct it before any other thread exists: it blocks the signals in the calling thread, and threads
// created afterwards inherit the mask, so the signals reach only the watcher. The callback may call
// Machine::turn_off(). The destructor stops the thread and restores the previous mask.
#pragma once

#include <signal.h>

#include <functional>
#include <thread>

namespace vmgen::mgmt {

class SignalWatcher {
public:
    explicit SignalWatcher(std::function<void(int signal)> on_signal);
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher&) = delete;
    SignalWatcher& operator=(const SignalWatcher&) = delete;

private:
    std::function<void(int)> m_on_signal;
    sigset_t m_previous{};
    int m_signal_fd = -1; // signalfd for SIGINT and SIGTERM
    int m_stop_fd = -1;   // eventfd: the destructor wakes the thread through it
    std::thread m_thread;
};

} // namespace vmgen::mgmt
