// bench/deploy's hosts: N real OpenSSH sshd servers on 127.0.0.1 (one port
// each), each with its own directory standing for the host's disk and a
// small HTTP server (python3 -m http.server) serving that directory, so a
// health check fetched on the host sees what was deployed there. Each tool
// deploys to its own root on every host (DIR/hI/tunnel, DIR/hI/ansible), so
// neither sees the other's releases. sshd tells every session its host's
// HTTP port as $HTTP_PORT (sshd_config SetEnv): on real hosts the app
// listens on the same port everywhere, here the ports differ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::bench {

struct deploy_host {
    std::string name;  // h1, h2, ...
    std::string dir;   // DIR/hI: served over HTTP at /
    std::uint16_t http_port = 0;
    test::sshd_fixture sshd;
};

class deploy_hosts {
  public:
    // Starts `count` hosts under `dir`; nullopt (with a message on stderr)
    // when a server does not come up.
    [[nodiscard]] static std::optional<deploy_hosts> start(const test::temp_dir& dir,
                                                           children& procs, int count);

    [[nodiscard]] const std::vector<deploy_host>& hosts() const noexcept { return hosts_; }
    // The tool's deploy root on host i: DIR/hI/TOOL.
    [[nodiscard]] std::string root(std::size_t i, const std::string& tool) const;
    // Every host's key line; the client key every server accepts.
    [[nodiscard]] const std::string& known_hosts_path() const noexcept { return known_hosts_; }
    [[nodiscard]] std::string client_key() const { return hosts_.front().sshd.client_key_path(); }

    // Group `web`, one line per host with ansible_host/port/user and the
    // variables deploy_root (DIR/hI/<root_tool>) and http_port; `group_vars`
    // lines go under [web:vars].
    [[nodiscard]] std::string ini_inventory(const std::string& root_tool,
                                            const std::vector<std::string>& group_vars) const;

    // Removes everything the tools left in their roots (between measurements).
    void clear_roots(const std::string& tool) const;

  private:
    std::vector<deploy_host> hosts_;
    std::string dir_;
    std::string known_hosts_;
};

}  // namespace tunnel::bench
