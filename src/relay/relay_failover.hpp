// `tunnel connect URL --relay URL2 [--relay URL3 ...]` (issue 12, "Clients";
// docs/relay-client.md "Several relays"): the relays a client may attach to,
// in order of preference. It attaches to the first that works; when the one
// it is on is lost it tries that one once more (a restart, a blip), then the
// next in order, with the supervisor's backoff between attempts. While it is
// on another than the first, `tunnel connect` probes the first (probe_relay)
// and, once that answers, attaches to it with a second session pinned to it,
// and leaves the other relay at a quiet moment once the names are up on the
// first (apps/tunnel/connect_command.cpp).
//
//   auto relays = relay::parse_relays(url, more, allow_plaintext);
//   auto failover = std::make_shared<relay::relay_failover>(
//       relay::expand_addresses(*relays, relay::system_resolver), options);
//   client_options.failover = failover;   // relay_supervisor_options wires it
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/byte_stream.hpp"
#include "ssh/connect_options.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::relay {

// At most this many relays (after a name's addresses are counted).
inline constexpr std::size_t max_relays = 16;

// The attach URL and each --relay value, in order: ws(s)://HOST[:PORT]/PATH,
// cleartext only to loopback unless allow_plaintext, none given twice, at
// most max_relays. Each problem is an error naming the value and the fix.
[[nodiscard]] core::result<std::vector<transport::ws_url>> parse_relays(
    const std::string& url, const std::vector<std::string>& more, bool allow_plaintext);

// The addresses `host` resolves to for `port`, in the resolver's order
// (empty when it does not resolve).
using address_resolver =
    std::function<std::vector<std::string>(const std::string& host, std::uint16_t port)>;
// getaddrinfo (blocking; called once, at start).
[[nodiscard]] std::vector<std::string> system_resolver(const std::string& host, std::uint16_t port);

// A relay name with several addresses counts as several relays, tried in
// the resolver's order (each keeps the name for Host, TLS and known_hosts;
// ws_url::address says where to connect). IP literals, names with one
// address and names that do not resolve (yet) stay as they are. Capped at
// max_relays.
[[nodiscard]] std::vector<transport::ws_url> expand_addresses(
    const std::vector<transport::ws_url>& relays, const address_resolver& resolve);

// "ws://relay:8080/v1/tunnel", plus " (address 10.0.0.2)" for an expanded one.
[[nodiscard]] std::string describe_relay(const transport::ws_url& url);

// Whether the relay's public listener answers HTTP: a GET of "/" (not an
// attach: no refusal is logged or throttled) answered with any status below
// 500 within `timeout`; TLS checked as the attach checks it.
asio::awaitable<core::result<void>> probe_relay(const transport::ws_url& url,
                                                const transport::ws_options& ws,
                                                std::chrono::milliseconds timeout);

struct relay_switch {
    std::size_t from = 0;  // index in relays()
    std::size_t to = 0;
    std::string from_url;  // describe_relay
    std::string to_url;
    // "failover" (the one it was on was lost) or "preferred" (back to the first)
    std::string reason;
};

struct failover_options {
    std::function<void(const relay_switch&)> on_switch;  // on a failover (not at the first attach)
};

class relay_failover {
  public:
    relay_failover(std::vector<transport::ws_url> relays, failover_options options);

    [[nodiscard]] const std::vector<transport::ws_url>& relays() const noexcept { return relays_; }
    // One stream opener per relay, in order (relay_supervisor_options).
    void set_openers(std::vector<ssh::stream_opener> openers);
    // supervisor_options::before_connect: points the target at the relay of
    // the next attempt (its opener, and its name and port for known_hosts).
    void before_connect(ssh::connect_options& target);
    // Relay `index` accepted the attach (its WebSocket upgrade).
    void attached(std::size_t index);
    // The relay of the last attach, if any.
    [[nodiscard]] std::optional<std::size_t> current() const noexcept { return attached_; }
    // Every attempt goes to relay `index` (a session that tries the first
    // relay again beside the one in use); nullopt: fail over as usual.
    void pin(std::optional<std::size_t> index) { pinned_ = index; }

  private:
    std::vector<transport::ws_url> relays_;
    failover_options options_;
    std::vector<ssh::stream_opener> openers_;
    std::optional<std::size_t> attached_;  // the relay of the last attach
    std::size_t trying_ = 0;               // the relay of the attempt under way (or last)
    bool started_ = false;
    bool last_ok_ = false;  // that attempt attached
    std::optional<std::size_t> pinned_;
};

}  // namespace tunnel::relay
