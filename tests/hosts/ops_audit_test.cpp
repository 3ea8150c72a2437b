// `tunnel audit-host` and `tunnel service logs` on a real test host: verdicts
// follow the host's actual state before and after a hardening plan.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ops_support.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;

std::map<std::string, std::string> verdicts(const std::string& json_text) {
    std::map<std::string, std::string> out;
    auto j = nlohmann::json::parse(json_text);
    for (const auto& c : j["checks"]) out[c["id"]] = c["verdict"];
    return out;
}

std::vector<std::string> target_args(const test_hosts& hosts, std::vector<std::string> head) {
    for (auto& f : hosts.tunnel_flags(0)) head.push_back(f);
    head.push_back("root@" + hosts[0].ip);
    return head;
}

TEST(OpsHostAudit, VerdictsFollowTheHostAndServiceLogsReadTheJournal) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto dir = temp_dir::create("ops-audit");
    ASSERT_TRUE(dir);
    auto inv = hosts->write_inventory("one");
    ASSERT_TRUE(inv);

    auto before = run_tunnel(target_args(*hosts, {"audit-host", "--json"}));
    EXPECT_EQ(before.exit_code, 1) << before.describe() << before.out;  // no firewall yet
    auto v = verdicts(before.out);
    EXPECT_EQ(v["firewall"], "fail") << before.out;
    auto pw = host_sh(*hosts, 0, "sshd -T | sed -n 's/^passwordauthentication //p'");
    EXPECT_EQ(v["sshd.password_authentication"], pw == "no\n" ? "pass" : "fail") << before.out;
    EXPECT_EQ(v["fail2ban"], "warn");

    auto plan = write_file(*dir, "harden.yaml",
                           R"(- sshd: {settings: {PasswordAuthentication: false, MaxAuthTries: 3}}
- firewall: {default_incoming: deny, rules: []}
)");
    auto applied = apply(*hosts, *inv, plan);
    ASSERT_EQ(applied.exit_code, 0) << applied.describe() << applied.out;

    auto after = run_tunnel(target_args(*hosts, {"audit-host", "--json"}));
    auto w = verdicts(after.out);
    EXPECT_EQ(w["firewall"], "pass") << after.out;
    EXPECT_EQ(w["sshd.password_authentication"], "pass") << after.out;
    EXPECT_EQ(w["sshd.max_auth_tries"], "pass") << after.out;
    EXPECT_EQ(w["net.listening"], "pass") << after.out;
    auto text = run_tunnel(target_args(*hosts, {"audit-host"}));
    EXPECT_TRUE(contains(text.out, "pass  Firewall")) << text.out;

    // The reload above is in ssh.service's journal.
    std::vector<std::string> args{"service", "logs"};
    for (auto& f : hosts->tunnel_flags(0)) args.push_back(f);
    args.push_back("root@" + (*hosts)[0].ip);
    args.push_back("ssh");
    args.push_back("-n");
    args.push_back("200");
    auto journal = run_tunnel(args);
    EXPECT_EQ(journal.exit_code, 0) << journal.describe();
    EXPECT_TRUE(contains(journal.out, "Reloading") || contains(journal.out, "reload"))
        << journal.out;
    auto bad = run_tunnel({"service", "logs", "root@" + (*hosts)[0].ip, "-evil"});
    EXPECT_NE(bad.exit_code, 0);
}

}  // namespace
}  // namespace tunnel::test
