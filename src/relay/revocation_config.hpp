// The relay's `revocation:` section (docs/relay.md "Revoking a token"):
// where revoked token IDs are kept.
//
//   revocation:
//     state_file: /var/lib/tunnel/revoked.db   # SQLite; absent: in memory only
#pragma once

#include <string>

#include "core/yaml_config.hpp"

namespace tunnel::relay {

struct revocation_config {
    std::string state_file;  // empty: revocations are lost at restart
};

void read_revocation_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                            revocation_config& out);

// "revocation.state_file: ..." for describe().
[[nodiscard]] std::string describe(const revocation_config& c);

}  // namespace tunnel::relay
