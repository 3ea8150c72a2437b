// tunnel relay --profile dev|prod: a real relay started from a profile with
// --set and flag overrides, --check-config over a profile, and the errors.
#include <gtest/gtest.h>

#include <thread>

#include "support/process.hpp"
#include "support/relay_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

std::uint16_t port_after(const std::string& out, const std::string& label) {
    const auto at = out.find(label);
    if (at == std::string::npos) return 0;
    const auto eol = out.find('\n', at);
    const auto colon = out.rfind(':', eol);
    return static_cast<std::uint16_t>(std::stoi(out.substr(colon + 1, eol - colon - 1)));
}

TEST(RelayProfileCli, DevProfileWithSetsAndFlagsServes) {
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir) << dir.error().message;
    ASSERT_TRUE(write_text_file(dir->file("s"), std::string(64, 'k') + "\n", 0600));
    ASSERT_TRUE(
        write_text_file(dir->file("dev.yaml"), "limits:\n  tenant_rps: 5\n  route_rps: 6\n"));
    spawn_options so;
    so.stdout_path = dir->file("out");
    so.stderr_path = dir->file("err");
    auto relay = spawn({tunnel_binary(), "relay", "--profile", "dev", "--config",
                        dir->file("dev.yaml"), "--jwt-secret-file", dir->file("s"), "--listen",
                        "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--set",
                        "limits.tenant_rps=7", "--set", "audit_log=" + dir->file("audit.jsonl")},
                       so);
    ASSERT_TRUE(relay) << relay.error().message;
    std::string out;
    for (int i = 0; i < 300 && out.find("shutdown.drain_timeout") == std::string::npos; ++i) {
        std::this_thread::sleep_for(50ms);
        out = read_text_file(dir->file("out")).value_or("");
    }
    ASSERT_NE(out.find("profile dev under " + dir->file("dev.yaml") + ":"), std::string::npos)
        << out << read_text_file(dir->file("err")).value_or("");
    EXPECT_NE(out.find("  limits.tenant_rps: 7\n"), std::string::npos) << out;  // --set over file
    EXPECT_NE(out.find("  limits.route_rps: 6\n"), std::string::npos) << out;   // file over profile
    EXPECT_NE(out.find("  limits.max_connections_per_ip: 4096\n"), std::string::npos)
        << out;  // the dev profile's
    EXPECT_NE(out.find("  audit_log: " + dir->file("audit.jsonl") + "\n"), std::string::npos)
        << out;
    EXPECT_NE(out.find("  jwt.secret_file: " + dir->file("s") + "\n"), std::string::npos) << out;
    const auto admin = port_after(out, "admin: ");
    ASSERT_NE(admin, 0) << out;
    auto health = http_request(admin, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    ASSERT_TRUE(health) << health.error().message;
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(relay->terminate(), 0);
}

TEST(RelayProfileCli, CheckConfigOverAProfile) {
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir) << dir.error().message;
    ASSERT_TRUE(write_text_file(dir->file("relay.yaml"), "domain: relay.example.com\n"));
    auto ok = run_tunnel({"relay", "--profile", "prod", "--check-config", dir->file("relay.yaml")});
    EXPECT_EQ(ok.exit_code, 0) << ok.describe();
    EXPECT_NE(ok.out.find("OK (over profile prod)"), std::string::npos) << ok.out;
    // Without the profile the same file is incomplete.
    auto bare = run_tunnel({"relay", "--check-config", dir->file("relay.yaml")});
    EXPECT_EQ(bare.exit_code, 1) << bare.describe();
    EXPECT_NE(bare.err.find("host_key_file: is required"), std::string::npos) << bare.err;
    auto bad = run_tunnel({"relay", "--profile", "prod", "--check-config", dir->file("relay.yaml"),
                           "--set", "limits.tenant_rps=-1", "--set", "tls=~"});
    EXPECT_EQ(bad.exit_code, 1) << bad.describe();
    EXPECT_NE(bad.err.find("limits.tenant_rps: must be a number > 0"), std::string::npos)
        << bad.err;
    EXPECT_NE(bad.err.find("with --set"), std::string::npos) << bad.err;
}

TEST(RelayProfileCli, MisuseIsExplained) {
    auto unknown = run_tunnel({"relay", "--profile", "staging"});
    EXPECT_EQ(unknown.exit_code, 2) << unknown.describe();
    EXPECT_NE(unknown.err.find("staging"), std::string::npos) << unknown.err;
    auto both = run_tunnel({"relay", "--dev", "--profile", "dev", "--jwt-secret-file", "/x"});
    EXPECT_NE(both.exit_code, 0);
    EXPECT_NE(both.err.find("--dev is --profile dev"), std::string::npos) << both.err;
    auto set_alone = run_tunnel({"relay", "--config", "/x.yaml", "--set", "workers=2"});
    EXPECT_NE(set_alone.exit_code, 0);
    EXPECT_NE(set_alone.err.find("--set needs --profile"), std::string::npos) << set_alone.err;
}

}  // namespace
}  // namespace tunnel::test
