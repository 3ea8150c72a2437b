#include "ssh/connect_options.hpp"

#include <fmt/format.h>

namespace tunnel::ssh {

std::string connect_options::destination() const {
    if (host.find(':') != std::string::npos) return fmt::format("{}@[{}]:{}", user, host, port);
    return fmt::format("{}@{}:{}", user, host, port);
}

}  // namespace tunnel::ssh
