// `tunnel apply` against a hostile local user and an unusual network, on real
// test hosts: links planted in the user's home (~/.ssh -> /root/.ssh,
// ~/.ssh/authorized_keys -> /etc/shadow, ~/.config -> /etc) are refused with
// root's files untouched while the ordinary case still works; an sshd drop-in
// name carrying a command substitution never reaches a shell; and a firewall
// applied through a port forward keeps sshd's own ports open.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/shell_quote.hpp"
#include "ops_support.hpp"
#include "support/net.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;

class OpsHostSafety : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto s = shared_hosts::start(2, "safety");
        ASSERT_TRUE(s) << s.error().message;
        shared_ = std::move(*s);
        hosts_ = &shared_->hosts;
        dir_ = &shared_->dir;
        inventory_ = shared_->inventory;
    }
    static void TearDownTestSuite() { shared_.reset(); }
    static inline std::unique_ptr<shared_hosts> shared_;
    static inline test_hosts* hosts_ = nullptr;
    static inline temp_dir* dir_ = nullptr;
    static inline std::string inventory_;
};

std::string slurp(const std::string& path) {
    return read_text_file(path).value_or("");
}

// Runs COMMAND on host 0 as the (unprivileged) user mallory.
std::string as_mallory(const test_hosts& hosts, const std::string& command) {
    return host_sh(hosts, 0, "runuser -u mallory -- sh -c " + core::shell_quote(command) + " 2>&1");
}

TEST_F(OpsHostSafety, LinksPlantedInAUsersHomeAreRefusedAndRootsFilesUntouched) {
    const auto h0 = (*hosts_)[0].name;
    auto kg = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mallory@test", "-f",
                   dir_->file("mallory")});
    ASSERT_TRUE(kg.ok()) << kg.describe();
    auto pub = slurp(dir_->file("mallory.pub"));
    while (!pub.empty() && pub.back() == '\n') pub.pop_back();
    host_sh(*hosts_, 0, "useradd -m -s /bin/bash mallory");
    const std::string root_state =
        "stat -c '%U %G %a' /root/.ssh /root/.ssh/authorized_keys /etc/shadow; ls -A /root/.ssh "
        "/etc | sha256sum; sha256sum /root/.ssh/authorized_keys /etc/shadow";
    const auto before = host_sh(*hosts_, 0, root_state);
    ASSERT_TRUE(contains(before, "root root 600\n")) << before;

    auto plan = write_file(*dir_, "key.yaml",
                           fmt::format("- name: mallory's key\n  hosts: {}\n  authorized_key: "
                                       "{{user: mallory, key: \"{}\"}}\n",
                                       h0, pub));
    // 1. ~/.ssh is a link to root's .ssh: root's authorized_keys would be rewritten and chowned.
    EXPECT_EQ(as_mallory(*hosts_, "ln -s /root/.ssh ~/.ssh && echo planted"), "planted\n");
    for (const auto& mode : {std::vector<std::string>{"--check"}, std::vector<std::string>{}}) {
        auto r = apply(*hosts_, inventory_, plan, mode);
        EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
        EXPECT_TRUE(contains(r.out,
                             "/home/mallory/.ssh is a symbolic link: refusing to write "
                             "mallory's keys through it"))
            << r.out;
        EXPECT_EQ(host_sh(*hosts_, 0, root_state), before);
    }

    // 2. ~/.ssh is real, authorized_keys is a link to /etc/shadow.
    EXPECT_EQ(as_mallory(*hosts_,
                         "rm ~/.ssh && mkdir -m 700 ~/.ssh && ln -s /etc/shadow "
                         "~/.ssh/authorized_keys && echo planted"),
              "planted\n");
    auto r = apply(*hosts_, inventory_, plan, {"--diff"});
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out,
                         "/home/mallory/.ssh/authorized_keys is a symbolic link, not a "
                         "regular file: refusing to read or replace it"))
        << r.out;
    EXPECT_FALSE(contains(r.out, "root:")) << "shadow content leaked into the output:\n" << r.out;
    EXPECT_EQ(host_sh(*hosts_, 0, root_state), before);

    // 3. A `file` step into the user's tree through ~/.config -> /etc.
    EXPECT_EQ(as_mallory(*hosts_, "ln -s /etc ~/.config && echo planted"), "planted\n");
    auto file_plan = write_file(*dir_, "config.yaml",
                                fmt::format("- hosts: {}\n  file: {{path: /home/mallory/.config/"
                                            "tunnel-test.conf, content: \"x\\n\", owner: "
                                            "mallory}}\n",
                                            h0));
    auto f = apply(*hosts_, inventory_, file_plan);
    EXPECT_EQ(f.exit_code, 1) << f.describe() << f.out;
    EXPECT_TRUE(contains(f.out,
                         "/home/mallory/.config is a symbolic link in /home/mallory, "
                         "which user mallory can change: refusing to follow it as root"))
        << f.out;
    EXPECT_EQ(host_sh(*hosts_, 0, "ls /etc/tunnel-test.conf 2>&1 >/dev/null | wc -l"), "1\n");
    EXPECT_EQ(host_sh(*hosts_, 0, root_state), before);

    // 4. The ordinary case still works: the key is written, mallory logs in with it, re-run ok.
    EXPECT_EQ(as_mallory(*hosts_, "rm ~/.ssh/authorized_keys ~/.config && echo clean"), "clean\n");
    auto ok = apply(*hosts_, inventory_, plan);
    ASSERT_EQ(ok.exit_code, 0) << ok.describe() << ok.out;
    EXPECT_EQ(host_sh(*hosts_, 0,
                      "stat -c '%U %G %a' ~mallory/.ssh ~mallory/.ssh/authorized_keys; cat "
                      "~mallory/.ssh/authorized_keys; ls -A ~mallory/.ssh"),
              "mallory mallory 700\nmallory mallory 600\n" + pub + "\nauthorized_keys\n");
    auto login = run({"ssh", "-F", "/dev/null", "-i", dir_->file("mallory"), "-o",
                      "UserKnownHostsFile=" + (*hosts_)[0].known_hosts_path, "-o", "BatchMode=yes",
                      "mallory@" + (*hosts_)[0].ip, "id -un"});
    EXPECT_EQ(login.out, "mallory\n") << login.describe();
    auto again = apply(*hosts_, inventory_, plan);
    EXPECT_TRUE(contains(again.out, h0 + "  ok=1 changed=0 failed=0")) << again.out;
    EXPECT_EQ(host_sh(*hosts_, 0, root_state), before);
}

TEST_F(OpsHostSafety, SshdDropInNameWithACommandIsRefusedBeforeAnyHostIsContacted) {
    const auto h0 = (*hosts_)[0].name;
    const auto before = host_sh(*hosts_, 0, "ls -A /etc/ssh/sshd_config.d /root");
    // No '/', ends in .conf: the old check let it through to `b="$d/.<name>..."` run as root.
    auto plan =
        write_file(*dir_, "sshd-name.yaml",
                   fmt::format("- hosts: {}\n  sshd:\n    file: \"$(cd;touch pwned).conf\"\n"
                               "    settings: {{MaxAuthTries: 3}}\n",
                               h0));
    auto r = apply(*hosts_, inventory_, plan);
    EXPECT_EQ(r.exit_code, 2) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.err, "sshd.file: '$(cd;touch pwned).conf' is not a drop-in file name"))
        << r.err;
    EXPECT_EQ(host_sh(*hosts_, 0, "ls /root/pwned 2>&1 >/dev/null | wc -l"), "1\n")
        << "the drop-in name ran a command on the host";
    EXPECT_EQ(host_sh(*hosts_, 0, "ls -A /etc/ssh/sshd_config.d /root"), before);
}

TEST_F(OpsHostSafety, FirewallThroughAPortForwardKeepsSshdsOwnPortsOpen) {
    const auto& h = (*hosts_)[1];
    // sshd listens on 22 and 2222; this tool reaches it only through a forward on another port.
    ASSERT_EQ(host_sh(*hosts_, 1,
                      "printf 'Port 22\\nPort 2222\\n' > /etc/ssh/sshd_config.d/50-ports.conf && "
                      "systemctl restart ssh && for i in $(seq 100); do ss -ltnH 'sport = :2222' "
                      "| grep -q LISTEN && break; sleep 0.1; done; ss -ltnH 'sport = :2222' | "
                      "grep -q LISTEN && echo listening"),
              "listening\n");
    auto port = unused_port();
    ASSERT_TRUE(port) << port.error().message;
    auto forward =
        spawn({"socat", fmt::format("TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork", *port),
               fmt::format("TCP:{}:22", h.ip)});
    ASSERT_TRUE(forward) << forward.error().message;
    ASSERT_TRUE(wait_for_port(*port, std::chrono::seconds(10)));

    auto host_key = slurp(h.known_hosts_path);  // "IP TYPE KEY"
    auto known = write_file(
        *dir_, "forward_known_hosts",
        fmt::format("[127.0.0.1]:{} {}", *port, host_key.substr(host_key.find(' ') + 1)));
    auto inventory = write_file(
        *dir_, "forward.yml",
        fmt::format("all:\n  hosts:\n    fwd:\n      ansible_host: 127.0.0.1\n      ansible_port: "
                    "{}\n      ansible_user: root\n      ansible_ssh_private_key_file: {}\n",
                    *port, h.key_path));
    cli_options slow;
    slow.timeout = std::chrono::seconds(240);
    run_options bounded;
    bounded.timeout = std::chrono::seconds(30);
    auto plan = write_file(*dir_, "fw-forward.yaml",
                           "- firewall: {default_incoming: deny, rules: ['80/tcp']}\n");
    auto r = run_tunnel({"apply", plan, "-i", inventory, "-F", "/dev/null", "-o",
                         "UserKnownHostsFile=" + known, "-o", "GlobalKnownHostsFile=/dev/null",
                         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"},
                        slow);
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    auto status = host_sh(*hosts_, 1, "ufw status verbose");
    EXPECT_TRUE(contains(status, "Default: deny (incoming)")) << status;
    EXPECT_TRUE(contains(status, "22/tcp                     ALLOW IN    Anywhere")) << status;
    EXPECT_TRUE(contains(status, "2222/tcp                   ALLOW IN    Anywhere")) << status;
    EXPECT_FALSE(contains(status, std::to_string(*port))) << status;

    // Brand-new connections: through the forward (which dials 22), and to 2222 directly.
    auto ssh = [&](std::vector<std::string> target) {
        std::vector<std::string> argv{"ssh",
                                      "-F",
                                      "/dev/null",
                                      "-i",
                                      h.key_path,
                                      "-o",
                                      "UserKnownHostsFile=" + known + " " + h.known_hosts_path,
                                      "-o",
                                      "BatchMode=yes",
                                      "-o",
                                      "ConnectTimeout=10"};
        argv.insert(argv.end(), target.begin(), target.end());
        argv.emplace_back("echo in");
        return run(argv, bounded);
    };
    auto via_forward = ssh({"-p", std::to_string(*port), "root@127.0.0.1"});
    EXPECT_EQ(via_forward.out, "in\n") << via_forward.describe();
    auto second_port = ssh({"-o", "HostKeyAlias=" + h.ip, "-p", "2222", "root@" + h.ip});
    EXPECT_EQ(second_port.out, "in\n") << second_port.describe();

    auto again = run_tunnel({"apply", plan, "-i", inventory, "-F", "/dev/null", "-o",
                             "UserKnownHostsFile=" + known, "-o", "GlobalKnownHostsFile=/dev/null",
                             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"},
                            slow);
    EXPECT_TRUE(contains(again.out, "fwd  ok=1 changed=0 failed=0")) << again.out;
}

}  // namespace
}  // namespace tunnel::test
