// `tunnel token` and `tunnel audit verify` as a user runs them: minted
// tokens verify with relay::token_verifier (the relay's own check), and an
// edited audit log is caught with the line number.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "observe/audit_log.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_token.hpp"
#include "support/process.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::relay {
namespace {

using test::run_tunnel;

class RelayTokenCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = test::temp_dir::create("relay-token-cli");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        secret_ = dir_->path() + "/jwt.secret";
        std::ofstream(secret_) << "integration-secret-0123456789abcdef\n";
        ::chmod(secret_.c_str(), 0600);
    }

    token_verifier verifier(claim_rules rules = {}) const {
        verifier_options o;
        o.path = secret_;
        o.rules = rules;
        auto v = token_verifier::load(o);
        EXPECT_TRUE(v) << (v ? "" : v.error().message);
        return std::move(*v);
    }

    std::optional<test::temp_dir> dir_;
    std::string secret_;
};

TEST_F(RelayTokenCli, MintedTokenVerifies) {
    auto r = run_tunnel({"token", "--secret-file", secret_, "--tenant", "acme", "--allow",
                         "llm,web-*", "--ttl", "1h", "--max-streams", "3", "--rps", "7.5",
                         "--audience", "relay-1", "--issuer", "ops"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_TRUE(r.err.empty()) << r.err;
    auto token = r.out;
    while (!token.empty() && token.back() == '\n') token.pop_back();
    EXPECT_EQ(token.find('\n'), std::string::npos);

    claim_rules rules;
    rules.audience = "relay-1";
    rules.issuer = "ops";
    auto p = verifier(rules).verify(token);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->tenant, "acme");
    EXPECT_TRUE(may_publish(*p, "llm"));
    EXPECT_TRUE(may_publish(*p, "web-2"));
    EXPECT_FALSE(may_publish(*p, "db"));
    EXPECT_EQ(p->max_streams, 3u);
    EXPECT_EQ(p->rps, 7.5);
    auto left = p->expires - std::chrono::system_clock::now();
    EXPECT_GT(left, std::chrono::minutes(55));
    EXPECT_LE(left, std::chrono::minutes(61));

    // Another relay (another audience) refuses it.
    claim_rules other;
    other.audience = "relay-2";
    EXPECT_EQ(verifier(other).verify(token).error().code, token_errc::wrong_audience);
}

TEST_F(RelayTokenCli, VisitorTokenVerifiesAsAVisitorTokenOnly) {
    auto r = run_tunnel({"token", "--visitor", "--secret-file", secret_, "--tenant", "acme",
                         "--allow", "llm", "--ttl", "1h"});
    ASSERT_TRUE(r.ok()) << r.describe();
    auto token = r.out.substr(0, r.out.find('\n'));
    auto visitors =
        token_verifier::load(visitor_verifier_options(secret_, std::chrono::seconds(30)));
    ASSERT_TRUE(visitors) << visitors.error().message;
    auto g = verify_visitor_token(*visitors, token, std::chrono::system_clock::now());
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_TRUE(grants(*g, "acme", "llm"));
    EXPECT_FALSE(grants(*g, "acme", "web"));
    EXPECT_EQ(verifier().verify(token).error().code, token_errc::wrong_type)
        << "a visitor token never attaches a tunnel";

    // Tunnel-token flags make no sense for a visitor.
    auto bad = run_tunnel({"token", "--visitor", "--secret-file", secret_, "--tenant", "acme",
                           "--allow", "llm", "--ttl", "1h", "--rps", "5", "--access", "token"});
    EXPECT_EQ(bad.exit_code, 2) << bad.describe();
    EXPECT_NE(bad.err.find("--rps, --access are for tunnel tokens only"), std::string::npos)
        << bad.err;

    // --access narrows what a publisher may choose.
    auto narrowed = run_tunnel({"token", "--secret-file", secret_, "--tenant", "acme", "--allow",
                                "llm", "--ttl", "1h", "--access", "token,basic"});
    ASSERT_TRUE(narrowed.ok()) << narrowed.describe();
    auto p = verifier().verify(narrowed.out.substr(0, narrowed.out.find('\n')));
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->access.to_string(), "token, basic");
}

TEST_F(RelayTokenCli, JsonOutputAndBadInput) {
    auto r = run_tunnel({"token", "--json", "--secret-file", secret_, "--tenant", "t1", "--allow",
                         "a", "--ttl", "5m"});
    ASSERT_TRUE(r.ok()) << r.describe();
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tenant"], "t1");
    EXPECT_TRUE(verifier().verify(j["token"].get<std::string>()));

    auto bad = run_tunnel(
        {"token", "--secret-file", secret_, "--tenant", "Bad_T", "--allow", "a", "--ttl", "0s"});
    EXPECT_EQ(bad.exit_code, 2) << bad.describe();
    EXPECT_TRUE(bad.out.empty());
    EXPECT_NE(bad.err.find("--tenant \"Bad_T\""), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("--ttl: must be > 0"), std::string::npos) << bad.err;

    auto missing = run_tunnel({"token", "--secret-file", dir_->path() + "/nope", "--tenant", "t",
                               "--allow", "a", "--ttl", "1h"});
    EXPECT_EQ(missing.exit_code, 2) << missing.describe();
    EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;

    ::chmod(secret_.c_str(), 0644);
    auto loose = run_tunnel(
        {"token", "--secret-file", secret_, "--tenant", "t", "--allow", "a", "--ttl", "1h"});
    ASSERT_TRUE(loose.ok()) << loose.describe();
    EXPECT_NE(loose.err.find("warning: secret file"), std::string::npos) << loose.err;
    EXPECT_EQ(loose.err.find("integration-secret"), std::string::npos);
}

TEST_F(RelayTokenCli, AuditVerifyCatchesAnEditedLine) {
    const auto path = dir_->path() + "/audit.jsonl";
    {
        auto log = observe::audit_log::open(path);
        ASSERT_TRUE(log) << log.error().message;
        ASSERT_TRUE(log->append("attach", {{"tenant", "acme"}, {"peer", "127.0.0.1:5000"}}));
        ASSERT_TRUE(log->append("publish", {{"tenant", "acme"}, {"name", "llm"}}));
        ASSERT_TRUE(log->append("publish_denied", {{"tenant", "acme"}, {"name", "db"}}));
        ASSERT_TRUE(log->append("detach", {{"tenant", "acme"}}));
    }
    auto ok = run_tunnel({"audit", "verify", path});
    ASSERT_EQ(ok.exit_code, 0) << ok.describe();
    EXPECT_NE(ok.out.find("ok, 4 records"), std::string::npos) << ok.out;

    // Someone hides the denial.
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    auto s = text.str();
    auto at = s.find("publish_denied");
    ASSERT_NE(at, std::string::npos);
    s.replace(at, 14, "publish_allowd");
    std::ofstream(path, std::ios::trunc) << s;

    auto broken = run_tunnel({"audit", "verify", path});
    EXPECT_EQ(broken.exit_code, 1) << broken.describe();
    EXPECT_NE(broken.err.find("line 4: prev does not match the SHA-256 of line 3"),
              std::string::npos)
        << broken.err;

    auto json = run_tunnel({"audit", "verify", "--json", path});
    EXPECT_EQ(json.exit_code, 1);
    auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j["ok"], false);
    EXPECT_EQ(j["line"], 4);
    EXPECT_EQ(j["records"], 3);
}

}  // namespace
}  // namespace tunnel::relay
