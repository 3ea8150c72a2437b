// bench/fanout/plan_bench: a 10-step plan on 4 disposable test hosts, the
// second (no-change) run, `tunnel apply` vs the equivalent `ansible-playbook`
// (same hosts, same key, both gathering facts), interleaved, medians
// (shared/PEERS.md). Needs the test-host harness up (tests/hosts/testhost up)
// and root. Installs python3 on the hosts first (Ansible's modules need it).
// The last line is the ratio ours/peer (lower is better).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/process.hpp"
#include "support/test_hosts.hpp"
#include "support/tunnel_cli.hpp"

namespace {

using namespace tunnel;
using bench::arg_int;
using bench::median;
using namespace tunnel::test;
using clk = std::chrono::steady_clock;

const char* tunnel_plan = R"(- name: deploy user
  user: {name: deploy, shell: /bin/bash}
- name: app user
  user: {name: app, system: true, shell: /usr/sbin/nologin}
- name: app dir
  directory: {path: /srv/app, owner: app, group: app, mode: "0755"}
- name: conf dir
  directory: {path: /srv/app/conf, owner: app, group: app, mode: "0750"}
- name: app config
  file: {path: /srv/app/conf/app.conf, content: "port = 8080\nworkers = 4\n", owner: app, mode: "0640"}
- name: app env
  file: {path: /srv/app/conf/env, content: "MODE=prod\n", owner: app, mode: "0640"}
- name: banner
  file: {path: /etc/app-banner, content: "managed host\n", mode: "0644"}
- name: deploy sudo
  sudoers: {name: deploy-app, rules: ["deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app.service"]}
- name: unit file
  file: {path: /etc/systemd/system/app.service, content: "[Unit]\nDescription=app\n\n[Service]\nExecStart=/bin/sleep infinity\nUser=app\n\n[Install]\nWantedBy=multi-user.target\n", mode: "0644"}
- name: app running
  service: {name: app, state: started, enabled: true}
)";

const char* ansible_play = R"(- hosts: all
  tasks:
    - name: deploy user
      ansible.builtin.user: {name: deploy, shell: /bin/bash}
    - name: app user
      ansible.builtin.user: {name: app, system: true, shell: /usr/sbin/nologin}
    - name: app dir
      ansible.builtin.file: {path: /srv/app, state: directory, owner: app, group: app, mode: "0755"}
    - name: conf dir
      ansible.builtin.file: {path: /srv/app/conf, state: directory, owner: app, group: app, mode: "0750"}
    - name: app config
      ansible.builtin.copy: {dest: /srv/app/conf/app.conf, content: "port = 8080\nworkers = 4\n", owner: app, mode: "0640"}
    - name: app env
      ansible.builtin.copy: {dest: /srv/app/conf/env, content: "MODE=prod\n", owner: app, mode: "0640"}
    - name: banner
      ansible.builtin.copy: {dest: /etc/app-banner, content: "managed host\n", mode: "0644"}
    - name: deploy sudo
      ansible.builtin.copy:
        dest: /etc/sudoers.d/deploy-app
        content: "# Managed by tunnel (sudoers step); local edits are overwritten.\ndeploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app.service\n"
        owner: root
        group: root
        mode: "0440"
        validate: visudo -cf %s
    - name: unit file
      ansible.builtin.copy: {dest: /etc/systemd/system/app.service, content: "[Unit]\nDescription=app\n\n[Service]\nExecStart=/bin/sleep infinity\nUser=app\n\n[Install]\nWantedBy=multi-user.target\n", mode: "0644"}
    - name: app running
      ansible.builtin.systemd: {name: app, state: started, enabled: true}
)";

}  // namespace

int main(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 3);
    auto hosts = test_hosts::start(4);
    if (!hosts) {
        fmt::print(stderr, "plan_bench: {}\n", hosts.error().message);
        return 1;
    }
    auto dir = temp_dir::create("plan-bench");
    if (!dir) return 1;
    auto inv = hosts->write_inventory("bench");
    if (!inv) return 1;
    const auto kh = hosts->known_hosts_all();
    (void)write_text_file(dir->file("plan.yaml"), tunnel_plan);
    (void)write_text_file(dir->file("play.yml"), ansible_play);

    fmt::print("installing python3 on the 4 hosts for Ansible (not timed)...\n");
    for (std::size_t i = 0; i < hosts->size(); ++i) {
        auto r = hosts->ssh(
            i,
            "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            "python3 >/dev/null && echo ok",
            std::chrono::minutes(5));
        if (r.out != "ok\n") {
            fmt::print(stderr, "plan_bench: installing python3 on {} failed: {}\n",
                       (*hosts)[i].name, r.describe());
            return 1;
        }
    }

    std::vector<std::string> ours{tunnel_binary(),
                                  "apply",
                                  dir->file("plan.yaml"),
                                  "-i",
                                  *inv,
                                  "-F",
                                  "/dev/null",
                                  "-o",
                                  "UserKnownHostsFile=" + kh,
                                  "-o",
                                  "GlobalKnownHostsFile=/dev/null",
                                  "-o",
                                  "StrictHostKeyChecking=yes",
                                  "-o",
                                  "BatchMode=yes",
                                  "--forks",
                                  "4"};
    std::vector<std::string> peer{"ansible-playbook", "-i", *inv, "-f", "4", dir->file("play.yml")};
    run_options peer_env;
    peer_env.timeout = std::chrono::minutes(5);
    peer_env.env.set = {{"ANSIBLE_SSH_COMMON_ARGS",
                         "-o UserKnownHostsFile=" + kh + " -o GlobalKnownHostsFile=/dev/null"},
                        {"ANSIBLE_HOST_KEY_CHECKING", "True"},
                        {"ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3"},
                        {"ANSIBLE_NOCOLOR", "1"},
                        {"HOME", dir->path()}};
    run_options ours_env;
    ours_env.timeout = std::chrono::minutes(5);
    ours_env.env.set = {{"HOME", dir->path()}};

    // Converge once with each tool (the first run changes things), then time no-change runs.
    for (auto* cmd : {&ours, &peer}) {
        auto r = run(*cmd, cmd == &ours ? ours_env : peer_env);
        if (!r.ok()) {
            fmt::print(stderr, "plan_bench: first run of {} failed: {}\n{}\n", (*cmd)[0],
                       r.describe(), r.out);
            return 1;
        }
    }
    std::vector<double> t_ours, t_peer;
    for (int round = 0; round < rounds; ++round) {
        for (auto* cmd : {&ours, &peer}) {
            auto start = clk::now();
            auto r = run(*cmd, cmd == &ours ? ours_env : peer_env);
            double ms = std::chrono::duration<double, std::milli>(clk::now() - start).count();
            bool unchanged = cmd == &ours ? r.out.find("changed=1") == std::string::npos &&
                                                r.out.find(" changed=0 ") != std::string::npos
                                          : r.out.find("changed=0") != std::string::npos &&
                                                r.out.find("changed=1") == std::string::npos;
            if (!r.ok() || !unchanged) {
                fmt::print(stderr,
                           "plan_bench: no-change run of {} failed or changed something: {}\n{}\n",
                           (*cmd)[0], r.describe(), r.out);
                return 1;
            }
            (cmd == &ours ? t_ours : t_peer).push_back(ms);
        }
    }
    const double ours_ms = median(t_ours), peer_ms = median(t_peer);
    fmt::print(
        "10-step plan, 4 hosts, no-change run (median of {}): tunnel apply {:.0f} ms, "
        "ansible-playbook {:.0f} ms\n",
        rounds, ours_ms, peer_ms);
    fmt::print("plan no-change run tunnel/ansible-playbook: {:.3f}\n", ours_ms / peer_ms);
    return 0;
}
