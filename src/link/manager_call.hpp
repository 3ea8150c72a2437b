#pragma once
// One request to a running `tunnel up` over its control socket, for the
// processes that borrow its warm sessions (exec_client, pooled_transfer): the
// request line out, the one-line JSON reply back. What follows the reply on
// the socket (a channel's first bytes) is kept for the caller.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"

namespace tunnel::link {

struct manager_reply {
    std::shared_ptr<asio::local::stream_protocol::socket> socket;  // still open
    nlohmann::json reply;                                          // a JSON object
    std::string rest;  // bytes read after the reply line
};

// nullopt when there is no manager to ask (nothing listens at socket_path),
// the request is too long for a control line, or the manager went away or
// said nothing within `timeout`: the caller then uses its own connection.
asio::awaitable<std::optional<manager_reply>> call_manager(const std::string& socket_path,
                                                           const nlohmann::json& request,
                                                           std::chrono::milliseconds timeout);

}  // namespace tunnel::link
