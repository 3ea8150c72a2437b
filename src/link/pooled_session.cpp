#include "link/pooled_session.hpp"

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::link {

using namespace std::chrono_literals;

asio::awaitable<pooled_pick> pick_pooled_session(std::shared_ptr<manager> m,
                                                 const control_request& req) {
    pooled_pick p;
    p.l = req.link.empty() ? nullptr : m->find(req.link);
    if (!p.l && !req.destination.empty())
        for (const auto& k : m->links())
            if (k->destination() == req.destination) {
                p.l = k;  // the first in file order
                break;
            }
    if (!p.l)
        p.refused = req.destination.empty()
                        ? fmt::format("no link named {}", core::log_text(req.link, 64))
                        : fmt::format("no link reaches {}", core::log_text(req.destination, 80));
    else if (!p.l->serves_execs())
        p.refused =
            fmt::format("link {} does not serve other processes (exec_pool: false)", p.l->name());
    else if (!p.l->active())
        p.refused = fmt::format("link {} is {}", p.l->name(), to_string(p.l->state()));
    if (p.refused.empty()) {
        // A session whose last probe failed gets a short verdict, not the full switch_wait.
        auto acquiring = p.l->acquire(ssh::clock_type::now() + 2s);
        p.s = co_await std::move(acquiring);
        if (!p.s) p.refused = fmt::format("link {} has no healthy session", p.l->name());
    }
    co_return p;
}

std::string pooled_reply_line(nlohmann::json j, const nlohmann::json& id) {
    if (!id.is_null()) j["id"] = id;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string pooled_fallback_line(const std::string& why, const nlohmann::json& id) {
    return pooled_reply_line({{"ok", false}, {"fallback", true}, {"error", why}}, id);
}

}  // namespace tunnel::link
