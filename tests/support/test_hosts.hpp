// Disposable Debian 12 test hosts (ARCHITECTURE §7, docs/testing-hosts.md):
// real systemd as PID 1 under systemd-nspawn, each in its own network
// namespace on the harness bridge (10.213.79.0/24), reachable over ssh as root
// with a per-run key. The harness (image, bridge, apt proxy) is brought up by
// CTest's hosts.setup test; this fixture starts and removes hosts.
//
//   auto hosts = tunnel::test::test_hosts::start(4);
//   ASSERT_TRUE(hosts) << hosts.error().message;
//   auto r = hosts->ssh(0, "systemctl is-system-running");
//   hosts->stop(1, test_hosts::stop_mode::fast);
//
// Hosts are removed when the fixture is destroyed; hosts of a crashed test are
// removed by hosts.cleanup. Tests must target only these addresses.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct test_host {
    std::string name;  // th0, th1, ... (also its hostname)
    std::string ip;    // 10.213.79.(10 + index)
    std::uint16_t port = 22;
    std::string user = "root";
    std::string key_path;          // private key authorized for root (shared by the run's hosts)
    std::string known_hosts_path;  // holds "IP ssh-ed25519 ..." for this host only
};

class test_hosts {
  public:
    enum class stop_mode {
        orderly,  // SIGTERM to nspawn: systemd shuts down (sshd closes connections)
        fast,     // SIGKILL to the guest's init: the host vanishes
    };

    // Starts `count` hosts in parallel. Fails with a message saying what to do
    // when the harness is not up, this is not root, or a host does not boot.
    [[nodiscard]] static core::result<test_hosts> start(std::size_t count);

    test_hosts(test_hosts&& other) noexcept = default;
    test_hosts& operator=(test_hosts&& other) noexcept;
    test_hosts(const test_hosts&) = delete;
    test_hosts& operator=(const test_hosts&) = delete;
    ~test_hosts();  // removes every host (in parallel)

    [[nodiscard]] std::size_t size() const noexcept { return hosts_.size(); }
    [[nodiscard]] const test_host& operator[](std::size_t i) const { return hosts_.at(i); }
    [[nodiscard]] const std::vector<test_host>& hosts() const noexcept { return hosts_; }

    [[nodiscard]] core::result<void> stop(std::size_t i, stop_mode mode = stop_mode::orderly);
    // Boots a stopped host again: same disk (changes persist), same address and host key.
    [[nodiscard]] core::result<void> boot(std::size_t i);
    [[nodiscard]] core::result<void> restart(std::size_t i);
    [[nodiscard]] bool running(std::size_t i) const;

    // `ssh root@IP COMMAND` with the OpenSSH client (strict host key, batch mode).
    [[nodiscard]] run_result ssh(std::size_t i, const std::string& command,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                 const std::string& user = "root") const;
    // Runs argv inside the host as root through nsenter: works even when sshd
    // or the firewall is broken (use it to read the host's state in checks).
    [[nodiscard]] run_result exec(
        std::size_t i, std::vector<std::string> argv,
        std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

    // Flags that make `tunnel exec/run/apply` reach host i and nothing else:
    // -F /dev/null --private-key KEY -o UserKnownHostsFile=KH
    // -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes.
    [[nodiscard]] std::vector<std::string> tunnel_flags(std::size_t i) const;
    // A known_hosts file with every host of this fixture (for one -o UserKnownHostsFile).
    [[nodiscard]] std::string known_hosts_all() const;
    // Writes a YAML inventory: group `all` with each host (ansible_host,
    // ansible_user root, ansible_ssh_private_key_file), under `group`
    // when given. Returns its path (in a temp dir owned by the fixture).
    [[nodiscard]] core::result<std::string> write_inventory(
        const std::string& group = "testhosts") const;

    // The harness script (tests/hosts/testhost) and its state directory.
    [[nodiscard]] static std::string script();
    [[nodiscard]] static std::string run_dir();

  private:
    test_hosts(temp_dir dir, std::vector<test_host> hosts)
        : dir_(std::move(dir)), hosts_(std::move(hosts)) {}
    void remove_all() noexcept;

    temp_dir dir_;
    std::vector<test_host> hosts_;
};

}  // namespace tunnel::test
