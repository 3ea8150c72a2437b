// `tunnel connect`: publish local services through a relay (ARCHITECTURE §5,
// §6, RELAY-CONTRACT). The relay is an SSH server reached over a WebSocket;
// each exposed NAME is a reverse forward (`tcpip-forward` with bind address
// NAME, plus its visitor access when one is chosen: publish_request.hpp) that
// the forwarding supervisor keeps published across reconnects.
//
//   relay::relay_client_options o;
//   o.url = *transport::parse_ws_url("wss://relay.example.com/v1/tunnel");
//   o.ws.token = token;
//   o.exposes = {*relay::parse_expose("llm=127.0.0.1:11434")};
//   auto sup = forward::supervisor::create(executor,
//   *relay::relay_supervisor_options(std::move(o)));
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/backoff.hpp"
#include "forward/supervisor.hpp"
#include "relay/visitor_access.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::relay {

struct expose_spec {
    std::string name;                     // DNS label, lower-cased
    forward::endpoint target;             // HOST:PORT on this machine
    std::string text;                     // as typed
    std::optional<access_policy> access;  // who may call it; absent: the relay's default
    bool tcp = false;                     // --expose-tcp: a raw TCP name (the relay's tcp: section)
};

// NAME=HOST:PORT (NAME: a relay label, see valid_label: [a-z0-9-], 1..63, no "--").
[[nodiscard]] core::result<expose_spec> parse_expose(std::string_view text);
// --expose-tcp NAME=HOST:PORT: the same, for a raw TCP name (tcp = true).
[[nodiscard]] core::result<expose_spec> parse_expose_tcp(std::string_view text);

// --access, --allow-ip and --htpasswd as typed.
struct access_flags {
    std::vector<std::string> access;     // "token" (every name) or "llm=token" (one name)
    std::vector<std::string> allow_ips;  // CIDRs, comma-separated or repeated (access ip)
    std::string htpasswd_file;           // user:hash lines (access basic)
};

// Gives each expose its access: the NAME=MODE entry for it, else the entry
// without a name, else none (the relay decides). Every problem is an error
// before anything connects: an unknown mode or name, a name given twice, ip
// without --allow-ip, basic without --htpasswd, --allow-ip/--htpasswd that no
// name uses, a request the relay would refuse to parse (it is checked with
// the relay's own parse_publish_request).
[[nodiscard]] core::result<void> apply_access(std::vector<expose_spec>& exposes,
                                              const access_flags& flags);

// The token's `sub` claim (the tenant), read without verifying anything: the
// relay verifies; the client only needs its SSH user name.
[[nodiscard]] core::result<std::string> tenant_of_token(std::string_view token);

// Public URLs of `name` from the relay's 101 headers: Tunnel-Public-Url with
// `name` for "{name}" (host-routed https://name--tenant.domain/ or path-routed
// .../t/tenant/name/, as the relay's routing decides). From older relays
// (no "{name}"): the host-routed one when Tunnel-Domain is set, then the
// path-routed one (Tunnel-Public-Url + name + "/").
[[nodiscard]] std::vector<std::string> public_urls(const transport::ws_attach_info& attach,
                                                   std::string_view name);

// The reverse forwards that publish `exposes`: bind address NAME (with its
// access, publish_request.hpp), one port each from 80 so the relay's
// forwarded-tcpip channels say which name they are for.
[[nodiscard]] std::vector<forward::forward_spec> publish_forwards(
    const std::vector<expose_spec>& exposes);

// Where `tunnel connect` records relay host keys on first use.
[[nodiscard]] std::string default_relay_known_hosts();

struct relay_event {
    enum class kind { attached, published, refused, host_key_recorded };
    kind what = kind::attached;
    std::string tenant;
    std::string name;    // published/refused
    std::string target;  // published/refused: HOST:PORT
    std::string access;  // published/refused: "public", "token", ... ("" = relay default)
    std::vector<std::string> urls;  // published (a raw TCP name: tcp://relay-host:port)
    bool tcp = false;               // published/refused: a raw TCP name (--expose-tcp)
    std::uint16_t tcp_port = 0;     // published raw TCP: the relay's public port for it
    // attached: the relay holds the names for this long after a drop (its
    // lease; 0: no lease, names are released when the connection drops).
    std::chrono::seconds lease_grace{0};
    std::string message;  // refused: why
    // host_key_recorded: the relay's SSH host key, seen for the first time and
    // recorded (trust on first use): compare it with what the relay printed.
    // host_key_recorded: known_hosts name, "[relay.example.com]:443";
    // attached, with several relays: the one attached to (describe_relay).
    std::string relay;
    std::string fingerprint;       // "SHA256:..."
    std::string known_hosts_file;  // where it was recorded
};

class relay_failover;

struct relay_client_options {
    transport::ws_url url;
    transport::ws_options ws;  // token, TLS trust, timeouts, allow_plaintext
    std::vector<expose_spec> exposes;
    std::string known_hosts_file = default_relay_known_hosts();
    std::optional<std::string> relay_host_key;  // "SHA256:..." pins the relay's SSH host key
    std::chrono::seconds keepalive{15};         // SSH keepalive interval (3 unanswered: reconnect)
    std::optional<std::string> ciphers;  // SSH ciphers to offer (default: libssh's, chacha20 first)
    core::backoff_policy backoff{std::chrono::milliseconds(250), std::chrono::seconds(30), 0};
    bool reconnect = true;
    std::function<void(const relay_event&)> on_event;
    // Several relays (tunnel connect --relay): the supervisor attaches to
    // the one this picks for each attempt (`url` is then ignored; the first
    // of its relays takes its place for the checks).
    std::shared_ptr<relay_failover> failover;
};

// Checks the options and turns them into a supervisor's: target = the relay
// over the WebSocket, user = the token's tenant, auth `none`, host key pinned
// or recorded on first use (reported as a host_key_recorded event); one
// reverse forward per exposed name. Refuses ws:// to a host that is not
// loopback unless ws.allow_plaintext (transport::check_plaintext).
[[nodiscard]] core::result<forward::supervisor_options> relay_supervisor_options(
    relay_client_options options);

}  // namespace tunnel::relay
