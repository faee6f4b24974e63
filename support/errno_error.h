// Turning a failed system call into an Error with the call's name and the error's text.
#pragma once

#include "support/result.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace vmgen {

// The text of an errno value; thread safe (unlike std::strerror).
[[nodiscard]] inline std::string errno_text(int err)
{
    char buffer[128];
    // GNU strerror_r returns a pointer to the message (in buffer or static).
    return std::string(::strerror_r(err, buffer, sizeof(buffer)));
}

[[nodiscard]] inline Failure errno_failure(std::string_view what, int err = errno)
{
    return fail("{}: {}", what, errno_text(err));
}

} // namespace vmgen
