// Which warm session a pooled request from another process (exec, sftp;
// docs/link.md, "Pooled sessions") runs on. Matching never sends a request
// elsewhere than asked: "link" must name a link, else "destination"
// (user@host:port after ssh_config) must equal the destination a link's
// target resolves to. A link that is down, one with exec_pool: false, or no
// healthy session within 2 s is a refusal: nothing was opened, the caller
// connects itself.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "link/control_request.hpp"
#include "link/manager.hpp"

namespace tunnel::link {

struct pooled_pick {
    std::shared_ptr<link> l;          // the link matched (null: none)
    std::shared_ptr<ssh::session> s;  // its healthy session (null when refused)
    std::string refused;              // why not (empty: s is set)
};

asio::awaitable<pooled_pick> pick_pooled_session(std::shared_ptr<manager> m,
                                                 const control_request& req);

// One reply line (with the request's id when it had one).
[[nodiscard]] std::string pooled_reply_line(nlohmann::json j, const nlohmann::json& id);

// A refusal: nothing ran or was opened, the caller connects itself.
[[nodiscard]] std::string pooled_fallback_line(const std::string& why, const nlohmann::json& id);

}  // namespace tunnel::link
