// The relay config's `visitors:` section (STYLE 11; docs/relay.md "Visitor
// access"): the key of visitor tokens and the operator's access policy per
// published name, which beats what a publisher asks for (resolve_access).
//
//   visitors:
//     secret_file: /etc/tunnel/visitor.secret     # HS256 key of visitor tokens
//     names:
//       acme/llm:  {access: token}
//       acme/web:  {access: basic, htpasswd_file: /etc/tunnel/web.htpasswd}
//       acme/api:  {access: ip, allow_ips: [10.0.0.0/8, "2001:db8::/32"]}
//       acme/docs: {access: public}
//
// relay_config gets a `visitor_config visitors;` member and calls
// read_visitor_config from its parser; htpasswd files are read then (config
// load time), so a bad hash stops `tunnel relay --check-config`.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/yaml_config.hpp"
#include "relay/visitor_access.hpp"

namespace tunnel::relay {

struct visitor_config {
    std::string secret_file;  // empty: no visitor tokens (token mode answers 503)
    std::map<std::pair<std::string, std::string>, access_policy> names;         // (tenant, name)
    std::map<std::pair<std::string, std::string>, std::string> htpasswd_files;  // for describe()
};

// Reads `node` (the value of `visitors:`) into `out`; every problem is
// recorded on `r` with its path ("visitors.names.acme/web.htpasswd_file: ...").
void read_visitor_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         visitor_config& out);

// The operator's policy for (tenant, name), or nullptr.
[[nodiscard]] const access_policy* configured_access(const visitor_config& config,
                                                     std::string_view tenant,
                                                     std::string_view name);

// "visitors.secret_file: PATH", "visitors.names.acme/llm: token", ... (no secrets).
[[nodiscard]] std::vector<std::string> describe(const visitor_config& config);

}  // namespace tunnel::relay
