#include "ssh/connect_options.hpp"

#include <fmt/format.h>

namespace tunnel::ssh {

std::string connect_options::destination() const {
    if (host.find(':') != std::string::npos) return fmt::format("{}@[{}]:{}", user, host, port);
    return fmt::format("{}@{}:{}", user, host, port);
}

std::vector<std::string> connect_options::known_hosts_files() const {
    std::vector<std::string> files = user_known_hosts_files;
    files.insert(files.end(), global_known_hosts_files.begin(), global_known_hosts_files.end());
    return files;
}

std::pair<std::string, std::uint16_t> connect_options::known_hosts_name() const {
    if (host_key_alias) return {*host_key_alias, 22};
    return {host, port};
}

}  // namespace tunnel::ssh
