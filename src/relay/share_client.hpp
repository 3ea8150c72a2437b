// The client side of the relay's share API (share_api.hpp; `tunnel share`):
// one HTTP/1.1 request over TCP or TLS (certificate and host name checked
// unless `insecure`) with the tenant's tunnel token as Bearer, within a
// deadline, and the JSON answer.
//
//   relay::share_client_options o;
//   o.relay = *relay::parse_relay_base_url("https://relay.example.com");
//   o.token = token;
//   auto reply = relay::call_share_api(o, "GET", "/v1/shares", "");
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::relay {

// https://HOST[:PORT], http://, wss:// or ws:// (the attach URL of tunnel
// connect works: its path is ignored).
[[nodiscard]] core::result<transport::ws_url> parse_relay_base_url(std::string_view text);

struct share_client_options {
    transport::ws_url relay;             // scheme, host and port
    std::string token;                   // the tenant's tunnel token
    std::optional<std::string> ca_file;  // trust this CA bundle (PEM) too
    bool insecure = false;               // no certificate check (the CLI warns)
    bool allow_plaintext = false;        // http:// to a host that is not loopback
    std::chrono::milliseconds timeout{15'000};
};

struct share_reply {
    unsigned status = 0;
    std::string body;  // JSON
};

// Sends `method target` with `body` (JSON, may be empty) and reads the
// answer (at most 1 MiB). Errors: the relay could not be reached, TLS not
// trusted, timeout; an HTTP error status is a reply, not an error.
[[nodiscard]] core::result<share_reply> call_share_api(const share_client_options& options,
                                                       std::string_view method,
                                                       std::string_view target,
                                                       std::string_view body);

}  // namespace tunnel::relay
