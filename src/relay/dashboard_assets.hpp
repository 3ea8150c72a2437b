// The dashboard's files (src/relay/dashboard/), compiled into the binary by
// cmake/embed_assets.cmake: the relay serves them under /dashboard/.
#pragma once

#include <span>
#include <string_view>

namespace tunnel::relay {

struct dashboard_asset {
    std::string_view name;          // "index.html", "dashboard.js", ...
    std::string_view content_type;  // "text/html; charset=utf-8", ...
    std::string_view body;
};

[[nodiscard]] std::span<const dashboard_asset> dashboard_assets() noexcept;

}  // namespace tunnel::relay
