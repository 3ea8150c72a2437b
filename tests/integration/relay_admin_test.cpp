// The relay's admin surface and audit log against a real `tunnel relay`:
// admin bearer token and Host check (finding 9), the published audit head and
// `tunnel audit verify --expect-head / --hmac-key-file` (finding 10), audit
// rotation and what happens when the audit log cannot be written (finding 7).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "support/relay_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string admin_token = "admin-token-0123456789abcdef";
const std::string audit_key = "audit-key-0123456789abcdef0123456789abcdef";

std::string attach_request(const std::string& token) {
    std::string auth = token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return fmt::format(
        "GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
        "13\r\n{}\r\n",
        auth);
}

std::string admin_get(const std::string& path, const std::string& host, const std::string& token) {
    std::string auth = token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n{}\r\n", path, host, auth);
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
}

// Unauthenticated attach attempts: each one is refused and audited (with
// the per-source refusal throttle raised: these tests want the records).
const std::string many_refusals = "limits:\n  attach_refusals_per_ip: 10000\n";
void refuse_attaches(const relay_fixture& relay, int n) {
    for (int i = 0; i < n; ++i) {
        auto r = http_request(relay.public_port(), attach_request(""), 5s);
        ASSERT_TRUE(r) << r.error().message;
        ASSERT_EQ(r->status, 401);
    }
}

int status_of(std::uint16_t port, const std::string& request) {
    auto r = http_request(port, request, 5s);
    return r ? r->status : -1;
}

// Finding 9: with admin.token_file every endpoint but the probes needs the
// token, and a Host that is not an IP literal or a configured name gets 421.
TEST(RelayAdmin, BearerTokenAndHostCheck) {
    relay_options o;
    o.admin_token = admin_token;
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message;
    const auto port = relay->admin_port();
    const std::string host = fmt::format("127.0.0.1:{}", port);
    for (const char* path : {"/metrics", "/api/v1/tunnels", "/api/v1/diagnostics", "/help"}) {
        EXPECT_EQ(status_of(port, admin_get(path, host, "")), 401) << path;
        EXPECT_EQ(status_of(port, admin_get(path, host, "wrong-token-0123456789")), 401) << path;
        EXPECT_EQ(status_of(port, admin_get(path, host, admin_token)), 200) << path;
    }
    EXPECT_EQ(status_of(port, admin_get("/healthz", host, "")), 200);
    EXPECT_EQ(status_of(port, admin_get("/readyz", host, "")), 200);
    // DNS rebinding: the browser sends the attacker's name.
    EXPECT_EQ(status_of(port, admin_get("/metrics", "evil.example", admin_token)), 421);
    EXPECT_EQ(status_of(port, admin_get("/api/v1/tunnels", "evil.example:9090", "")), 421);
    EXPECT_EQ(status_of(port, admin_get("/metrics", "localhost", admin_token)), 200);
    // The token is never logged.
    EXPECT_EQ(relay->log().find(admin_token), std::string::npos);
    auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("admin_http_requests_total{status=\"401\"}"), std::string::npos)
        << metrics;
}

// A relay without a token (loopback) still refuses foreign Host names.
TEST(RelayAdmin, HostCheckWithoutToken) {
    auto relay = relay_fixture::start({});
    ASSERT_TRUE(relay) << relay.error().message;
    const auto port = relay->admin_port();
    EXPECT_EQ(status_of(port, admin_get("/api/v1/tunnels", "evil.example", "")), 421);
    EXPECT_EQ(status_of(port, admin_get("/api/v1/tunnels", "127.0.0.1", "")), 200);
    EXPECT_EQ(status_of(port, admin_get("/api/v1/tunnels", "[::1]:9090", "")), 200);
}

TEST(RelayAdmin, NonLoopbackAdminWithoutTokenIsAConfigError) {
    auto dir = temp_dir::create("relay-admin");
    ASSERT_TRUE(dir);
    ASSERT_TRUE(write_text_file(dir->file("jwt.secret"), "0123456789abcdef0123456789abcdef\n"));
    const std::string config = dir->file("relay.yaml");
    ASSERT_TRUE(write_text_file(
        config, fmt::format("listen: 127.0.0.1:0\nadmin_listen: 0.0.0.0:0\nhost_key_file: {}\n"
                            "jwt:\n  secret_file: {}\n",
                            dir->file("host_key"), dir->file("jwt.secret"))));
    auto check = run_tunnel({"relay", "--check-config", config});
    EXPECT_EQ(check.exit_code, 1) << check.describe();
    EXPECT_NE(check.err.find("admin.token_file: required because admin_listen 0.0.0.0:0 is not "
                             "loopback"),
              std::string::npos)
        << check.err;
    cli_options quick;
    quick.timeout = 10s;
    auto start = run_tunnel({"relay", "--config", config}, quick);
    EXPECT_FALSE(start.ok());
    EXPECT_FALSE(start.timed_out) << "the relay started instead of refusing its config";
    EXPECT_NE(start.err.find("admin.token_file"), std::string::npos) << start.err;

    // With a token file it is accepted.
    ASSERT_TRUE(write_text_file(dir->file("admin.token"), admin_token + "\n", 0600));
    std::ofstream(config, std::ios::app)
        << "admin:\n  token_file: " << dir->file("admin.token") << "\n";
    auto ok = run_tunnel({"relay", "--check-config", config});
    EXPECT_TRUE(ok.ok()) << ok.describe();
}

// Finding 10: the relay publishes its keyed audit head; verify with the key
// and the head detects truncation and a rewrite made without the key.
TEST(RelayAdmin, AuditHeadAndVerify) {
    auto keys = temp_dir::create("relay-audit-key");
    ASSERT_TRUE(keys);
    const std::string key_file = keys->file("audit.key");
    ASSERT_TRUE(write_text_file(key_file, audit_key + "\n", 0600));
    relay_options o;
    o.audit_log = true;
    o.admin_token = admin_token;
    o.extra_yaml = fmt::format("audit:\n  hmac_key_file: {}\n", key_file) + many_refusals;
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message;
    refuse_attaches(*relay, 3);

    auto head_reply = relay->admin_request("/api/v1/audit/head");
    ASSERT_TRUE(head_reply);
    ASSERT_EQ(head_reply->status, 200) << head_reply->raw;
    auto head = nlohmann::json::parse(head_reply->body);
    EXPECT_TRUE(head["keyed"].get<bool>());
    EXPECT_EQ(head["file"], relay->audit_path());
    const std::string published = head["head"];
    ASSERT_EQ(published.size(), 64u);
    // The head needs the admin token like everything else.
    EXPECT_EQ(status_of(relay->admin_port(), admin_get("/api/v1/audit/head", "127.0.0.1", "")),
              401);
    refuse_attaches(*relay, 2);  // the log moves on after the head was read

    const auto log = relay->audit_path();
    auto ok = run_tunnel(
        {"audit", "verify", "--hmac-key-file", key_file, "--expect-head", published, log});
    EXPECT_TRUE(ok.ok()) << ok.describe();
    EXPECT_NE(ok.out.find("HMAC-SHA256"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("expected head found at record 3"), std::string::npos) << ok.out;
    auto no_key = run_tunnel({"audit", "verify", log});
    EXPECT_EQ(no_key.exit_code, 1) << no_key.describe();
    EXPECT_NE(no_key.err.find("--hmac-key-file"), std::string::npos) << no_key.err;

    // Truncation: cut the records up to and including the published head.
    const auto original = lines_of(log);
    ASSERT_EQ(original.size(), 5u);
    const std::string copy = keys->file("copy.jsonl");
    write_lines(copy, {original.begin(), original.begin() + 2});
    auto cut_plain = run_tunnel({"audit", "verify", "--hmac-key-file", key_file, copy});
    EXPECT_TRUE(cut_plain.ok()) << "a prefix of the chain verifies on its own";
    auto cut = run_tunnel(
        {"audit", "verify", "--hmac-key-file", key_file, "--expect-head", published, copy});
    EXPECT_EQ(cut.exit_code, 1) << cut.describe();
    EXPECT_NE(cut.err.find("truncation"), std::string::npos) << cut.err;

    // A rewrite without the key: records altered, links recomputed as best
    // an attacker can (SHA-256 or an HMAC under a guessed key).
    std::vector<std::string> forged;
    std::string link(64, '0');
    for (std::size_t i = 0; i < original.size(); ++i) {
        auto r = nlohmann::ordered_json::parse(original[i]);
        r.erase("prev_hmac");
        if (r.contains("peer")) r["peer"] = "203.0.113.9:4444";
        r["prev_hmac"] = link;
        forged.push_back(r.dump());
        link = core::hex_encode(core::hmac_sha256("guessed-key", forged.back()));
    }
    write_lines(copy, forged);
    auto rewritten = run_tunnel({"audit", "verify", "--hmac-key-file", key_file, copy});
    EXPECT_EQ(rewritten.exit_code, 1) << rewritten.describe();
    EXPECT_NE(rewritten.err.find("line 2"), std::string::npos) << rewritten.err;
}

// Finding 7: rotation by size through the relay; one chain across the files.
TEST(RelayAdmin, AuditLogRotatesAndVerifiesAsASet) {
    relay_options o;
    o.audit_log = true;
    o.extra_yaml = "audit:\n  max_bytes: 4096\n  keep: 2\n" + many_refusals;
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message;
    refuse_attaches(*relay, 60);  // ~15 KB of refusals
    const auto log = relay->audit_path();
    struct stat st {};
    ASSERT_EQ(::stat((log + ".1").c_str(), &st), 0) << "no rotation happened";
    ASSERT_EQ(::stat((log + ".2").c_str(), &st), 0);
    EXPECT_NE(::stat((log + ".3").c_str(), &st), 0) << "keep: 2";
    for (const auto& f : {log, log + ".1", log + ".2"}) {
        ASSERT_EQ(::stat(f.c_str(), &st), 0);
        EXPECT_LE(st.st_size, 4096) << f;
    }
    auto head = nlohmann::json::parse(relay->admin_get("/api/v1/audit/head"));
    auto v = run_tunnel({"audit", "verify", "--expect-head", head["head"], log});
    EXPECT_TRUE(v.ok()) << v.describe();
    EXPECT_NE(v.out.find(log + ".2, " + log + ".1, " + log + ": ok"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("rotated away"), std::string::npos) << v.out;
    EXPECT_EQ(nlohmann::json::parse(lines_of(log).front())["event"], "audit_rotate");
    // Deleting the middle file breaks the chain.
    ASSERT_EQ(::unlink((log + ".1").c_str()), 0);
    auto gap = run_tunnel({"audit", "verify", log});
    EXPECT_EQ(gap.exit_code, 1) << gap.describe();
    EXPECT_NE(gap.err.find("a file is missing"), std::string::npos) << gap.err;
}

// Finding 7: when the audit log cannot be written (here: its file system is
// full), attaches are refused with 503, the error is logged and counted, and
// the relay recovers once space is back — with an unbroken chain.
TEST(RelayAdmin, FullAuditDiskRefusesAttaches) {
    auto dir = temp_dir::create("relay-auditfs");
    ASSERT_TRUE(dir);
    const std::string mnt = dir->file("fs");
    ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
    // A private mount namespace with a 16 KiB tmpfs, 12 KiB of it taken by a
    // filler file: the relay's own audit records fill the rest.
    auto probe = run({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                      "mount -t tmpfs -o size=16k tunnel-test \"$0\"", mnt});
    if (!probe.ok())
        GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace here (needs root): "
                     << probe.describe();
    relay_options o;
    o.audit_log_path = mnt + "/audit.jsonl";
    o.extra_yaml = many_refusals;
    o.launcher = {"unshare",
                  "--mount",
                  "--propagation",
                  "private",
                  "sh",
                  "-c",
                  "mount -t tmpfs -o size=16k tunnel-test \"$0\" && "
                  "head -c 12288 /dev/zero > \"$0/filler\" && exec \"$@\"",
                  mnt};
    auto relay = relay_fixture::start(o);
    ASSERT_TRUE(relay) << relay.error().message;
    auto token = relay->mint("alice", "llm");
    ASSERT_TRUE(token);

    double failures = 0;
    for (int i = 0; i < 200 && failures == 0; ++i) {
        refuse_attaches(*relay, 1);
        auto diag = nlohmann::json::parse(relay->admin_get("/api/v1/diagnostics"), nullptr, false);
        ASSERT_TRUE(diag.is_object());
        failures = diag["counters"]["audit_write_failures"].get<double>();
    }
    ASSERT_GT(failures, 0) << "the audit file system never filled up";
    auto refused = http_request(relay->public_port(), attach_request(*token), 5s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 503) << refused->raw;
    EXPECT_NE(refused->body.find("audit_unavailable"), std::string::npos) << refused->body;
    EXPECT_NE(relay->admin_get("/metrics").find("relay_audit_write_failures_total "),
              std::string::npos);
    EXPECT_NE(relay->log().find("No space left on device"), std::string::npos) << relay->log();
    EXPECT_NE(relay->log().find("attaches are refused"), std::string::npos) << relay->log();

    // Space again: attaches work, and the chain has no torn record in it.
    auto freed = run({"nsenter", "--target", std::to_string(relay->process().pid()), "--mount",
                      "rm", "-f", mnt + "/filler"});
    ASSERT_TRUE(freed.ok()) << freed.describe();
    auto c = relay->publish("alice", *token, "llm", 9, true);
    ASSERT_TRUE(c) << c.error().message;
    auto copy = run({"nsenter", "--target", std::to_string(relay->process().pid()), "--mount",
                     "cat", o.audit_log_path});
    ASSERT_TRUE(copy.ok()) << copy.describe();
    ASSERT_TRUE(write_text_file(dir->file("copy.jsonl"), copy.out));
    EXPECT_NE(copy.out.find("\"event\":\"attach\""), std::string::npos);
    auto v = run_tunnel({"audit", "verify", dir->file("copy.jsonl")});
    EXPECT_TRUE(v.ok()) << v.describe();
}

}  // namespace
}  // namespace tunnel::test
