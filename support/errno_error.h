// Turning a failed system call into an Error with the call's name and strerror.
#pragma once

#include "support/result.h"

#include <cerrno>
#include <cstring>

namespace vmgen {

[[nodiscard]] inline Failure errno_failure(std::string_view what, int err = errno)
{
    return fail("{}: {}", what, std::strerror(err));
}

} // namespace vmgen
