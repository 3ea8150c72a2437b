// Facts for a deploy file's `templates:` (`{{ facts.arch }}`, the names
// ops::facts knows): gathered in one read-only round trip per host
// (ops::facts_script) before any host is rendered, locked or written, and
// only when a template names `facts`.
#pragma once

#include <cstddef>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "deploy/deploy_config.hpp"
#include "deploy/release_host.hpp"

namespace tunnel::deploy {

// True when a template of `c` mentions `facts` (a tag like {{ facts.arch }}
// or a {{# facts }} section).
[[nodiscard]] bool templates_use_facts(const deploy_config& c);

// Each target's facts as template variables (ops::facts_json), in target
// order; the first host that cannot be read fails it all, naming the host.
asio::awaitable<core::result<std::vector<nlohmann::json>>> gather_facts(
    const deploy_config& c, const std::vector<host_target>& targets, std::size_t forks);

}  // namespace tunnel::deploy
