#include "deploy/deploy_facts.hpp"

#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "inventory/fanout.hpp"
#include "ops/facts.hpp"

namespace tunnel::deploy {

bool templates_use_facts(const deploy_config& c) {
    for (const auto& t : c.templates)
        if (t.text.find("facts") != std::string::npos) return true;
    return false;
}

asio::awaitable<core::result<std::vector<nlohmann::json>>> gather_facts(
    const deploy_config& c, const std::vector<host_target>& targets, std::size_t forks) {
    std::vector<nlohmann::json> out(targets.size());
    std::vector<std::optional<core::error>> errors(targets.size());
    // (the executor first, in a named local: a co_await inside braces is a g++ 12 trap)
    asio::any_io_executor ex = co_await asio::this_coro::executor;
    co_await inventory::for_each_host(
        targets.size(), forks, [&](std::size_t i) -> asio::awaitable<void> {
            const auto& t = targets[i];
            auto fail = [&](const core::error& e) {
                errors[i] = core::error{
                    e.code, fmt::format("host {}: reading its facts for the templates: {}", t.name,
                                        e.message)};
            };
            auto h = co_await release_host::connect(ex, t, c);
            if (!h) co_return fail(h.error());
            auto r = co_await (*h)->run_script(ops::facts_script(), std::chrono::seconds(30));
            if (!r) co_return fail(r.error());
            if (r->exit_status != 0)
                co_return fail(core::error{core::errc::protocol_error,
                                           fmt::format("the facts script exited {}: {}",
                                                       r->exit_status, r->err.substr(0, 200))});
            auto f = ops::parse_facts(r->out, t.options.port);
            if (!f) co_return fail(f.error());
            out[i] = ops::facts_json(*f);
        });
    for (auto& e : errors)
        if (e) co_return tl::unexpected(*e);
    co_return out;
}

}  // namespace tunnel::deploy
