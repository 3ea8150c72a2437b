// The client side of GET /api/v1/usage for `tunnel usage report`: one plain
// HTTP GET to the relay's admin listener (http://HOST:PORT, as admin_listen
// serves it) with the admin bearer token, bounded in time and size.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::usage {

struct admin_url {
    std::string host;
    std::string port;
};

// "http://127.0.0.1:9090", "127.0.0.1:9090", "http://[::1]:9090/"; https and
// paths are refused with a message saying what to give instead.
[[nodiscard]] core::result<admin_url> parse_admin_url(std::string_view text);

struct admin_reply {
    int status = 0;
    std::string content_type;
    std::string body;
};

// GET `target` (e.g. "/api/v1/usage?format=csv"); `token` empty: no
// Authorization. Bodies over 64 MiB and answers slower than `timeout` fail.
[[nodiscard]] core::result<admin_reply> admin_get(const admin_url& url, const std::string& target,
                                                  const std::string& token,
                                                  std::chrono::milliseconds timeout);
// POST `json_body` to `target` (e.g. "/api/v1/tokens/revoke"), the same way.
[[nodiscard]] core::result<admin_reply> admin_post(const admin_url& url, const std::string& target,
                                                   const std::string& json_body,
                                                   const std::string& token,
                                                   std::chrono::milliseconds timeout);

}  // namespace tunnel::usage
