#include "relay/revocation_config.hpp"

#include <fmt/format.h>

namespace tunnel::relay {

void read_revocation_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                            revocation_config& out) {
    if (!r.expect_map(node, path, {"state_file"})) return;
    if (node["state_file"])
        if (auto s = r.string(node["state_file"], path + ".state_file")) {
            if (s->empty())
                r.error(path + ".state_file",
                        "must be a file path, e.g. /var/lib/tunnel/revoked.db (leave the key out "
                        "to keep revocations in memory only)");
            else
                out.state_file = *s;
        }
}

std::string describe(const revocation_config& c) {
    return fmt::format(
        "revocation.state_file: {}",
        c.state_file.empty() ? "(none: revocations in memory, lost at restart)" : c.state_file);
}

}  // namespace tunnel::relay
