// The relay's admin listener (loopback by default): endpoints are a table
// {path, help, handler, mutates} (STYLE 13); /help is generated from it and
// mutating endpoints require POST.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tunnel::relay {

class relay_state;

struct admin_response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

struct admin_endpoint {
    std::string path;
    std::string help;
    std::function<admin_response(relay_state&)> handler;
    bool mutates = false;
};

// The endpoint table.
[[nodiscard]] std::vector<admin_endpoint> admin_endpoints();

// Accepts admin connections on state->admin_acceptor.
void start_admin(std::shared_ptr<relay_state> state);

}  // namespace tunnel::relay
