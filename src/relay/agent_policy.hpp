// Agent forwarding at the relay (docs/relay.md, "Agent forwarding").
//
// The relay terminates each tunnel's SSH session and runs no programs, so
// nothing on it could use a forwarded agent, and it never opens an
// `auth-agent@openssh.com` channel to a tunnel client. What can reach it:
//
// * `auth-agent-req@openssh.com`, the client asking to forward its agent.
//   Accepted only for tenants listed in `agent_forwarding.tenants`; either
//   way nothing is sent back (libssh answers no reply to it, and OpenSSH
//   asks for none), so the decision is what the relay records: audited
//   `agent_forwarding_allowed` or `agent_forwarding_refused`;
// * an `auth-agent@openssh.com` channel the client opens: only servers open
//   those and the relay has no agent to offer, so it is refused for every
//   tenant, and audited.
//
// Each tunnel audits its first max_audited requests; later ones are counted
// (relay_agent_requests_total{tenant,outcome}) and logged at debug level,
// so a client cannot flood the audit log.
//
//   agent_forwarding:
//     tenants: [ops, build-*]
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/yaml_config.hpp"

namespace tunnel::ssh {
enum class agent_request;  // ssh/server_session.hpp (kept out: relay_config.hpp includes this)
}

namespace tunnel::relay {

struct relay_state;
struct tunnel_entry;

struct agent_forwarding_config {
    // Tenant names or globs (a-z 0-9 -, * and ?) whose agent-forwarding
    // requests are accepted. Empty (the default): refused for everyone.
    std::vector<std::string> tenants;
};

// Reads `node` (the value of `agent_forwarding:`); problems go to `r` with
// their path ("agent_forwarding.tenants: ...").
void read_agent_forwarding_config(core::yaml_reader& r, const YAML::Node& node,
                                  const std::string& path, agent_forwarding_config& out);

// "agent_forwarding.tenants: ops, build-*" (or "(none: refused for every tenant)").
[[nodiscard]] std::string describe(const agent_forwarding_config& config);

struct agent_decision {
    bool allowed = false;
    std::string event;   // agent_forwarding_allowed / agent_forwarding_refused
    std::string reason;  // for the log and the audit record
};

[[nodiscard]] agent_decision decide_agent_request(const agent_forwarding_config& config,
                                                  std::string_view tenant, ssh::agent_request what);

// Audit records per tunnel; the rest are counted only.
inline constexpr unsigned max_audited_agent_requests = 8;

// The tunnel's server_handlers::on_agent_request: decides, logs, counts and
// audits each request.
[[nodiscard]] std::function<void(ssh::agent_request)> agent_request_handler(
    std::weak_ptr<relay_state> relay, std::weak_ptr<tunnel_entry> tunnel);

}  // namespace tunnel::relay
