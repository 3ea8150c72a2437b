#include "core/fd_limit.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::core {

namespace {

std::uint64_t shown(rlim_t v) {
    return v == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(v);
}

}  // namespace

result<fd_limit> nofile_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return fail(errc::io_error,
                    fmt::format("getrlimit(RLIMIT_NOFILE) failed: {}", std::strerror(errno)));
    return fd_limit{shown(rl.rlim_cur), shown(rl.rlim_max)};
}

result<fd_limit> raise_nofile_limit(std::uint64_t ceiling) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return fail(errc::io_error,
                    fmt::format("getrlimit(RLIMIT_NOFILE) failed: {}", std::strerror(errno)));
    const rlim_t want = rl.rlim_max == RLIM_INFINITY
                            ? static_cast<rlim_t>(ceiling)
                            : std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(ceiling));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlimit raised = rl;
        raised.rlim_cur = want;
        if (::setrlimit(RLIMIT_NOFILE, &raised) != 0)
            return fail(errc::io_error,
                        fmt::format("cannot raise the open-file limit from {} to {}: {}",
                                    rl.rlim_cur, want, std::strerror(errno)));
    }
    return nofile_limit();
}

}  // namespace tunnel::core
