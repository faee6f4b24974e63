// Names the calling thread (pthread_setname_np: what top -H, ps -L, perf and /proc/PID/task/*/comm show), so an
// operator can tell a VM's vCPUs, VMBus channel workers and storage I/O threads apart. Linux keeps 15 bytes;
// longer names are cut. Failing to name a thread is harmless and not reported.
#pragma once

#include <fmt/format.h>
#include <pthread.h>

#include <string>

namespace vmgen {

inline void set_thread_name(std::string name)
{
    if (name.size() > 15)
        name.resize(15);
    (void)pthread_setname_np(pthread_self(), name.c_str());
}

template <typename... Args>
void set_thread_name(fmt::format_string<Args...> format, Args&&... args)
{
    set_thread_name(fmt::format(format, std::forward<Args>(args)...));
}

} // namespace vmgen
