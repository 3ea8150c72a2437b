// The client side of the control socket, for `tunnel ls`, `status`,
// `restart`, `switch`, `events` and `down`: blocking, one request per
// connection, every wait bounded.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace tunnel::link {

// Connects to the control socket at `path` (non-blocking when asked); the
// error says how to start a manager when none listens there.
[[nodiscard]] core::result<core::unique_fd> dial_control(const std::string& path,
                                                         bool nonblocking = false);

// Sends one request and returns the reply line parsed. A reply with
// "ok": false is returned as it is (the caller prints its error).
[[nodiscard]] core::result<nlohmann::json> control_call(const std::string& path,
                                                        const nlohmann::json& request,
                                                        std::chrono::milliseconds timeout);

// Sends {"cmd":"events"} and calls `on_line` for every line until the
// manager closes the stream or `on_line` returns false.
[[nodiscard]] core::result<void> control_follow(
    const std::string& path, const std::function<bool(const std::string&)>& on_line);

}  // namespace tunnel::link
