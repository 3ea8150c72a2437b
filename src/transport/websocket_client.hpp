// A WebSocket client that carries a byte stream (ARCHITECTURE §5, §6): the
// relay's attach (`GET /v1/tunnel` + `Authorization: Bearer`), `tunnel
// ws-connect`'s stdio bridge and SSH sessions over a relay all use it.
//
//   auto url = transport::parse_ws_url("wss://relay.example.com/v1/tunnel");
//   auto ws = co_await transport::websocket_client::connect(executor, *url, options);
//   co_await (*ws)->bridge(in_fd, out_fd);   // bytes both ways until either side ends
//
// Message boundaries mean nothing: every read takes whatever payload arrived
// and every chunk read from the local side goes out as one binary message of
// at most 1 MiB. Beast stays inside websocket_client.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace tunnel::transport {

struct ws_url {
    bool tls = false;
    std::string host;  // no brackets, even for IPv6 literals
    uint16_t port = 0;
    std::string target = "/";  // path and query
    // Connect to this address instead of resolving `host` (which still names
    // the relay: Host, TLS SNI and certificate): one of several addresses of
    // a relay name (relay/relay_failover.hpp). Empty: resolve `host`.
    std::string address;

    // What goes into the Host header: host, plus :port when not the scheme's default.
    [[nodiscard]] std::string host_header() const;
    // "wss://host:port/target", for messages (a URL never holds the token).
    [[nodiscard]] std::string to_string() const;
    // "host" or "[host]:port" (known_hosts spelling), the key of a pinned relay.
    [[nodiscard]] std::string known_hosts_name() const;
};

// ws://host[:port][/path][?query] or wss://… Userinfo, fragments and other
// schemes are refused with a message that says what to write instead.
[[nodiscard]] core::result<ws_url> parse_ws_url(std::string_view text);

// 127.0.0.0/8, ::1, ::ffff:127.x.y.z and "localhost". Other names are not
// resolved: a name that happens to resolve to loopback is not trusted to.
[[nodiscard]] bool is_loopback_host(std::string_view host) noexcept;

// A token must not cross a network in cleartext: refuses ws:// to a host
// that is not loopback when a token would be sent, unless `allow_plaintext`
// (--allow-plaintext). The message says why and what to do instead.
[[nodiscard]] core::result<void> check_plaintext(const ws_url& url, bool sends_token,
                                                 bool allow_plaintext);

// A relay lease (docs/relay.md "Leases and the request queue"), shared by
// the connections of one `tunnel connect`: each attach sends
// `Tunnel-Lease: <id>` (or `new`) and keeps the ID the relay's 101 gives
// back, so a reconnect gets the tunnel's names back. The ID is a secret:
// never logged, never in a URL.
class websocket_client;
struct ws_lease {
    std::mutex mutex;
    std::string id;                 // empty until the relay gave one
    std::chrono::seconds grace{0};  // Tunnel-Lease-Grace
    // The connection attached with it now: stopping it with `release` set
    // tells the relay (release_now()).
    std::weak_ptr<websocket_client> current;
    // Sets `release` and stops the current connection (call on its
    // executor's thread): its WebSocket closes with ws_release_lease.
    void release_now();
    // Set when the client stops for good: the WebSocket is then closed with
    // ws_release_lease, and the relay releases the names at once.
    std::atomic<bool> release{false};
};
// The WebSocket close code that tells the relay to release the lease.
inline constexpr std::uint16_t ws_release_lease = 4000;

struct ws_options {
    std::string token;  // empty: no Authorization header
    // When set, asked for the token before each attach (instead of `token`):
    // a renewed or re-read one (relay/token_source.hpp). An error fails the
    // attach, which is retried like any other.
    std::function<core::result<std::string>()> token_source;
    std::shared_ptr<ws_lease> lease;     // absent: no lease asked for
    bool allow_plaintext = false;        // send the token over ws:// to a non-loopback host
    std::optional<std::string> ca_file;  // trust this CA bundle (PEM) in addition to the system's
    bool insecure = false;               // no certificate or name check (the CLI warns)
    std::chrono::milliseconds connect_timeout{15'000};  // TCP + TLS + upgrade
    // No frame (data or pong) from the peer for this long ends the stream; a
    // ping is sent when it has been silent for half of it.
    std::chrono::milliseconds idle_timeout{30'000};
};

// What the relay said in its 101 response (RELAY-CONTRACT).
struct ws_attach_info {
    std::string tenant;                   // Tunnel-Tenant
    std::string public_url;               // Tunnel-Public-Url ("{name}" for the published name)
    std::string domain;                   // Tunnel-Domain (host routing), may be empty
    bool leased = false;                  // the relay gave a lease (Tunnel-Lease)
    std::chrono::seconds lease_grace{0};  // Tunnel-Lease-Grace
};

// The error for an HTTP answer other than 101 to the upgrade: 401 and 403
// carry the relay's JSON `message`; anything else names the status.
[[nodiscard]] core::error refusal_error(const ws_url& url, unsigned status, std::string_view reason,
                                        std::string_view body);

// Reads a token file: content with surrounding whitespace trimmed; empty,
// multi-line or missing files are errors that name the file.
[[nodiscard]] core::result<std::string> read_token_file(const std::string& path);

class websocket_client : public std::enable_shared_from_this<websocket_client> {
  public:
    struct impl;

    // Resolves, connects, verifies TLS (unless insecure) and upgrades, all
    // within options.connect_timeout.
    static asio::awaitable<core::result<std::shared_ptr<websocket_client>>> connect(
        asio::any_io_executor executor, ws_url url, ws_options options);

    explicit websocket_client(std::unique_ptr<impl> i);
    ~websocket_client();
    websocket_client(const websocket_client&) = delete;
    websocket_client& operator=(const websocket_client&) = delete;

    [[nodiscard]] const ws_attach_info& attach_info() const noexcept;
    [[nodiscard]] const ws_url& url() const noexcept;

    // Moves bytes in_fd → WebSocket and WebSocket → out_fd until either side
    // ends, then closes both (the fds are owned from here on; they may be
    // pipes, sockets or a tty, and must be distinct numbers: dup() one end of
    // a socketpair). End of in_fd closes the WebSocket normally. Returns an
    // error when the WebSocket failed (peer silent past idle_timeout, reset,
    // closed with a reason) rather than closing cleanly.
    asio::awaitable<core::result<void>> bridge(int in_fd, int out_fd);

    // Cuts the connection and ends a running bridge; idempotent.
    void stop();

  private:
    std::unique_ptr<impl> impl_;
};

}  // namespace tunnel::transport
