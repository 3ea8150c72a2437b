// `tunnel up --install-unit`: a hardened systemd unit that runs `tunnel up`
// on one links.yaml. A system unit (root) runs as the file's owner when that
// is not root, keeps its control socket in /run/tunnel-up-STEM/, and is
// sandboxed (read-only system and home, private /tmp and devices, no new
// privileges, no capabilities, seccomp @system-service, only AF_UNIX/INET
// sockets); a user unit gets what an unprivileged systemd applies (no new
// privileges, seccomp, address families, umask 077).
#pragma once

#include <optional>
#include <string>

#include "core/error.hpp"

namespace tunnel::link {

enum class unit_scope { user, system };

struct unit_request {
    unit_scope scope = unit_scope::user;
    std::string tunnel_binary;               // absolute
    std::string links_file;                  // absolute
    std::optional<std::string> user;         // system units: User=
    std::optional<std::string> status_addr;  // --status-addr, passed through
};

// "tunnel-up-links.service" for /x/links.yaml: the file name without its
// extension, every character outside [A-Za-z0-9_-] replaced by '-'.
[[nodiscard]] std::string unit_name(const std::string& links_file);

[[nodiscard]] std::string render_unit(const unit_request& r);

// Writes the unit into `dir` atomically (a temporary file renamed over it,
// mode 0644) and returns its path.
[[nodiscard]] core::result<std::string> install_unit(const unit_request& r, const std::string& dir);

}  // namespace tunnel::link
