// bench/fanout: `uname -a` on N targets (N real sshd servers on loopback ports),
// `tunnel run --forks N` vs `parallel-ssh -p N` vs `ansible all -f N -m command`,
// interleaved (tunnel, pssh, ansible per round), medians (shared/PEERS.md).
// The last lines are the ratios ours/peer (lower is better).
//   fanout_bench [--targets 50] [--rounds 5]

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
using bench::time_process;

}  // namespace

int main(int argc, char** argv) {
    const int targets = arg_int(argc, argv, "--targets", 50);
    const int rounds = arg_int(argc, argv, "--rounds", 5);

    auto dir = test::temp_dir::create("tunnel-fanout-bench");
    if (!dir) return 1;
    setenv("HOME", dir->path().c_str(), 1);  // no tool reads the user's ~/.ssh or ~/.ansible
    unsetenv("SSH_AUTH_SOCK");
    setenv("ANSIBLE_LOCAL_TEMP", dir->file("ansible-tmp").c_str(), 1);
    setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", dir->file("ansible-cp").c_str(), 1);
    setenv("ANSIBLE_NOCOLOR", "1", 1);

    std::vector<test::sshd_fixture> servers;
    std::string known_hosts, inventory_yaml = "all:\n  hosts:\n", pssh_hosts,
                             ansible_ini = "[targets]\n";
    for (int i = 0; i < targets; ++i) {
        auto s = test::sshd_fixture::start();
        if (!s) {
            fmt::print(stderr, "cannot start sshd #{}: {}\n", i, s.error().message);
            return 1;
        }
        known_hosts += test::read_text_file(s->known_hosts_path()).value_or("");
        inventory_yaml +=
            fmt::format("    t{}: {{ansible_host: 127.0.0.1, ansible_port: {}}}\n", i, s->port());
        pssh_hosts += fmt::format("root@127.0.0.1:{}\n", s->port());
        ansible_ini += fmt::format("t{} ansible_host=127.0.0.1 ansible_port={}\n", i, s->port());
        servers.push_back(std::move(*s));
    }
    const std::string key = servers.front().client_key_path();
    const std::string kh = dir->file("known_hosts");
    (void)test::write_text_file(kh, known_hosts, 0600);
    (void)test::write_text_file(dir->file("inventory.yml"), inventory_yaml);
    (void)test::write_text_file(dir->file("pssh_hosts"), pssh_hosts);
    const std::string ssh_opts = fmt::format(
        "-F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o "
        "StrictHostKeyChecking=yes",
        kh);
    ansible_ini += fmt::format(
        "[targets:vars]\nansible_user=root\nansible_ssh_private_key_file={}\nansible_ssh_common_"
        "args='{}'\n"
        "ansible_python_interpreter=/usr/bin/python3\n",
        key, ssh_opts);
    (void)test::write_text_file(dir->file("inventory.ini"), ansible_ini);

    const std::string forks = std::to_string(targets);
    const std::vector<std::string> ours = {TUNNEL_BINARY,
                                           "run",
                                           "-i",
                                           dir->file("inventory.yml"),
                                           "-F",
                                           "/dev/null",
                                           "--private-key",
                                           key,
                                           "-o",
                                           "UserKnownHostsFile=" + kh,
                                           "-o",
                                           "GlobalKnownHostsFile=/dev/null",
                                           "-l",
                                           "root",
                                           "--forks",
                                           forks,
                                           "--",
                                           "uname -a"};
    const std::vector<std::string> pssh = {"parallel-ssh",
                                           "-p",
                                           forks,
                                           "-h",
                                           dir->file("pssh_hosts"),
                                           "-x",
                                           fmt::format("-i {} -o BatchMode=yes {}", key, ssh_opts),
                                           "-i",
                                           "uname -a"};
    const std::vector<std::string> ansible = {
        "ansible", "all", "-i",      dir->file("inventory.ini"), "-f", forks, "-m",
        "command", "-a",  "uname -a"};

    // One unmeasured round: every tool must succeed on every target.
    for (const auto* cmd : {&ours, &pssh, &ansible}) {
        if (time_process(*cmd) < 0) {
            auto r = test::run(*cmd, {{}, std::nullopt, "", std::chrono::milliseconds(120'000)});
            fmt::print(stderr, "{} failed: {}\n{}\n", (*cmd)[0], r.describe(),
                       r.out.substr(0, 2000));
            return 1;
        }
    }
    std::vector<double> t_ours, t_pssh, t_ansible;
    for (int r = 0; r < rounds; ++r) {
        t_ours.push_back(time_process(ours));
        t_pssh.push_back(time_process(pssh));
        t_ansible.push_back(time_process(ansible));
        fmt::print("round {}: tunnel {:.0f} ms, parallel-ssh {:.0f} ms, ansible {:.0f} ms\n", r + 1,
                   t_ours.back(), t_pssh.back(), t_ansible.back());
        if (t_ours.back() < 0 || t_pssh.back() < 0 || t_ansible.back() < 0) {
            fmt::print(stderr, "a run failed\n");
            return 1;
        }
    }
    const double m_ours = median(t_ours), m_pssh = median(t_pssh), m_ansible = median(t_ansible);
    fmt::print(
        "uname -a on {} sshd targets (loopback, chacha20 default), forks {}, median of {} "
        "interleaved rounds:\n",
        targets, targets, rounds);
    fmt::print(
        "  tunnel run    {:8.0f} ms\n  parallel-ssh  {:8.0f} ms\n  ansible       {:8.0f} ms\n",
        m_ours, m_pssh, m_ansible);
    fmt::print("ratio tunnel/parallel-ssh: {:.3f} (target <= 0.3)\n", m_ours / m_pssh);
    fmt::print("ratio tunnel/ansible: {:.3f} (target <= 0.05)\n", m_ours / m_ansible);
    return 0;
}
