// Where a running `tunnel up` listens, as every caller finds it: the CLI
// (link/exec_client.hpp) and the `tunnel` front (apps/tunnel/front), which
// links nothing of libtunnel, so this stays header-only and uses libc alone.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace tunnel::link {

// The control socket the CLI tries: $TUNNEL_CONTROL ("none": never use a
// manager), else $XDG_RUNTIME_DIR/tunnel/control.sock; nullopt when neither
// is set.
[[nodiscard]] inline std::optional<std::string> pooled_control_path() {
    if (const char* c = std::getenv("TUNNEL_CONTROL"); c && *c) {
        if (std::string_view(c) == "none") return std::nullopt;
        return std::string(c);
    }
    const char* dir = std::getenv("XDG_RUNTIME_DIR");
    if (!dir || dir[0] != '/') return std::nullopt;
    return std::string(dir) + "/tunnel/control.sock";
}

}  // namespace tunnel::link
