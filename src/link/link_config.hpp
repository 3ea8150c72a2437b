// The `tunnel up` file (links.yaml): named links, each one SSH destination
// reached over transports in priority order, the forwards it carries and its
// failover policy; plus where the control socket listens. Strict (STYLE 11):
// unknown keys are errors, and every problem is reported with its path and
// line ("links.db.failover.after_failures: must be ... (line 9)").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "forward/forward_spec.hpp"

namespace tunnel::link {

enum class transport_type { tcp, jump, command, http_connect, relay };

[[nodiscard]] std::string_view to_string(transport_type type) noexcept;

struct transport_config {
    transport_type type = transport_type::tcp;
    std::string name;     // for `tunnel switch`; defaults to the type ("tcp", "jump", ...)
    std::string via;      // jump: the bastion, as ProxyJump takes it ([user@]host[:port], aliases)
    std::string command;  // command: run through the shell, %h %p %r %n expanded (ProxyCommand)
    std::string proxy;    // http_connect: host:port of the HTTP proxy
    std::string url;      // relay: wss://... (parsed, not run yet)
    // tcp: connect to this host:port instead of the target's HostName and
    // Port (another route to the same server: a second address, a port
    // mapping). Host keys are still checked under the target's name.
    std::string address;
    // http_connect: where the proxy's "user:password" is (a file, or the name
    // of an environment variable); never the credentials themselves.
    std::string proxy_credentials_file;
    std::string proxy_credentials_env;
};

enum class start_policy { parallel, on_demand };

struct link_config {
    std::string name;
    std::string target;  // as `tunnel exec` takes it; empty for a relay link
    // ssh_config keywords, applied like `-o Key=Value` (in file order).
    std::vector<std::pair<std::string, std::string>> options;
    std::vector<transport_config> transports;  // priority order, never empty
    std::vector<forward::forward_spec> forwards;
    std::chrono::milliseconds keepalive{5'000};          // probe interval per transport
    int after_failures = 3;                              // failed probes in a row before failover
    std::optional<std::chrono::milliseconds> rtt_above;  // a slower probe counts as failed
    int return_after = 5;  // healthy probes in a row on a preferred transport before going back
    start_policy start = start_policy::parallel;
    // How long a new local connection waits for a session during a switch.
    std::chrono::milliseconds switch_wait{10'000};
    // `tunnel exec`, `cp` and `run` in other processes may run their commands
    // on this link's warm session through the control socket (docs/link.md,
    // "Pooled sessions"). `exec_pool: false` keeps them on their own connection.
    bool exec_pool = true;
    // A relay link (relays, token_file, expose): parsed so the file's shape
    // keeps working; `tunnel up` reports it as not supported yet.
    std::vector<std::string> relays;
    std::string token_file;
    std::vector<std::pair<std::string, std::string>> expose;

    [[nodiscard]] bool is_relay() const noexcept { return target.empty() && !relays.empty(); }
    // A probe that takes longer than this failed (rtt_above, else the interval).
    [[nodiscard]] std::chrono::milliseconds probe_timeout() const noexcept {
        return rtt_above ? std::min(*rtt_above, keepalive) : keepalive;
    }
};

struct control_config {
    std::string socket;       // empty: $XDG_RUNTIME_DIR/tunnel/control.sock
    std::string status_addr;  // empty: no HTTP status listener
};

struct links_file {
    std::vector<link_config> links;  // in file order
    control_config control;

    [[nodiscard]] const link_config* find(std::string_view name) const noexcept;
};

// Parses links.yaml text; `source` names it in messages (the file path).
[[nodiscard]] core::result<links_file> parse_links_file(std::string_view text,
                                                        const std::string& source);

// Reads and parses a file.
[[nodiscard]] core::result<links_file> load_links_file(const std::string& path);

// A link name: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.
[[nodiscard]] bool valid_link_name(std::string_view name) noexcept;

}  // namespace tunnel::link
