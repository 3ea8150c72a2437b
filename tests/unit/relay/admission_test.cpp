#include "relay/admission.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

public_route route_to(std::string tenant, std::string name) {
    public_route r;
    r.tenant = std::move(tenant);
    r.name = std::move(name);
    r.target = "/";
    return r;
}

tenant_policy policy_for(std::string tenant, double rps = 10, unsigned max_streams = 4) {
    tenant_policy p;
    p.tenant = std::move(tenant);
    p.allow = {"llm", "web-*"};
    p.rps = rps;
    p.max_streams = max_streams;
    p.expires = std::chrono::system_clock::now() + 1h;
    return p;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

TEST(RelayAdmission, HeadWithinLimitsIsAdmitted) {
    auto tracker = http_tracker::for_request(8192, 1024);
    (void)tracker.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(tracker.header_done());
    auto a = check_head(tracker.problem(), tracker.problem_detail(), limits_config{});
    EXPECT_TRUE(a.admitted());
    EXPECT_EQ(a.status, 0);
    EXPECT_TRUE(a.limit().empty());
}

TEST(RelayAdmission, OversizedHeadIs431) {
    limits_config limits;
    limits.max_header_bytes = 64;
    auto tracker = http_tracker::for_request(64, 1024);
    (void)tracker.feed("GET / HTTP/1.1\r\nX: " + std::string(200, 'a') + "\r\n\r\n");
    auto a = check_head(tracker.problem(), tracker.problem_detail(), limits);
    EXPECT_FALSE(a.admitted());
    EXPECT_EQ(a.reason, refusal::header_too_large);
    EXPECT_EQ(a.status, 431);
    EXPECT_EQ(a.code, "headers_too_large");
    EXPECT_EQ(a.message, "the request head is larger than 64 bytes");
    EXPECT_EQ(a.limit(), "header_size");
    EXPECT_FALSE(a.retry_after);
}

TEST(RelayAdmission, OversizedBodyIs413) {
    limits_config limits;
    limits.max_body_bytes = 10;
    auto tracker = http_tracker::for_request(8192, 10);
    (void)tracker.feed("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
    auto a = check_head(tracker.problem(), tracker.problem_detail(), limits);
    EXPECT_EQ(a.reason, refusal::body_too_large);
    EXPECT_EQ(a.status, 413);
    EXPECT_EQ(a.code, "body_too_large");
    EXPECT_EQ(a.message, "the request body is larger than 10 bytes");
    EXPECT_EQ(a.limit(), "body_size");
}

TEST(RelayAdmission, MalformedHeadIs400WithTheParserDetail) {
    auto tracker = http_tracker::for_request(8192, 10);
    (void)tracker.feed("NOT HTTP AT ALL\r\n\r\n");
    ASSERT_EQ(tracker.problem(), http_problem::bad_message);
    auto a = check_head(tracker.problem(), tracker.problem_detail(), limits_config{});
    EXPECT_EQ(a.reason, refusal::bad_request);
    EXPECT_EQ(a.status, 400);
    EXPECT_EQ(a.code, "bad_request");
    EXPECT_TRUE(contains(a.message, "malformed HTTP request: ")) << a.message;
    EXPECT_TRUE(contains(a.message, tracker.problem_detail())) << a.message;
    EXPECT_TRUE(a.limit().empty());
}

TEST(RelayAdmission, AmbiguousFramingIs400) {
    http_head head;
    head.method = "POST";
    head.fields = {{"Host", "h"}, {"Transfer-Encoding", "gzip, chunked"}};
    auto a = check_framing(head);
    EXPECT_EQ(a.reason, refusal::bad_request);
    EXPECT_EQ(a.status, 400);
    EXPECT_EQ(a.code, "bad_request");
    EXPECT_NE(a.message.find("only \"chunked\""), std::string::npos) << a.message;
    head.fields = {{"Host", "h"}, {"Transfer-Encoding", "chunked"}};
    EXPECT_TRUE(check_framing(head).admitted());
}

TEST(RelayAdmission, StoppingIs503) {
    EXPECT_TRUE(check_stopping(false).admitted());
    auto a = check_stopping(true);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(a.code, "shutting_down");
}

TEST(RelayAdmission, RouteLookup) {
    auto found = route_request("", "/t/acme/llm/v1", "");
    EXPECT_TRUE(check_route(found).admitted());

    auto none = route_request("127.0.0.1:8080", "/index.html", "");
    auto a = check_route(none);
    EXPECT_EQ(a.reason, refusal::no_route);
    EXPECT_EQ(a.status, 404);
    EXPECT_EQ(a.code, "no_route");
    EXPECT_EQ(a.message, none.error().message);

    auto bad = route_request("", "/t/a_b/llm/", "");
    ASSERT_FALSE(bad);
    ASSERT_NE(bad.error().code, core::errc::not_found);
    auto b = check_route(bad);
    EXPECT_EQ(b.reason, refusal::bad_route);
    EXPECT_EQ(b.status, 400);
    EXPECT_EQ(b.code, "bad_route");
    EXPECT_EQ(b.message, bad.error().message);
}

// The admitted case needs a live SSH session: the relay integration tests
// cover it (every proxied request passes here).
TEST(RelayAdmission, TunnelOfflineIs503) {
    const auto r = route_to("acme", "llm");
    auto a = check_tunnel(r, nullptr);
    EXPECT_EQ(a.reason, refusal::tunnel_offline);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(a.code, "tunnel_offline");
    EXPECT_TRUE(contains(a.message, "--expose llm=HOST:PORT")) << a.message;

    tunnel_entry not_started;  // attached, SSH session not up yet
    EXPECT_EQ(check_tunnel(r, &not_started).reason, refusal::tunnel_offline);
    tunnel_entry closing;
    closing.closing = true;
    EXPECT_EQ(check_tunnel(r, &closing).reason, refusal::tunnel_offline);
}

TEST(RelayAdmission, PolicyIsCheckedOnEveryRequest) {
    const auto now = std::chrono::system_clock::now();
    auto p = policy_for("acme");
    EXPECT_TRUE(check_policy(route_to("acme", "llm"), p, now).admitted());
    EXPECT_TRUE(check_policy(route_to("acme", "web-1"), p, now).admitted());

    auto not_allowed = check_policy(route_to("acme", "db"), p, now);
    EXPECT_EQ(not_allowed.reason, refusal::policy);
    EXPECT_EQ(not_allowed.status, 403);
    EXPECT_EQ(not_allowed.code, "policy");
    EXPECT_TRUE(contains(not_allowed.message, "\"db\"")) << not_allowed.message;

    auto expired = check_policy(route_to("acme", "llm"), p, p.expires);
    EXPECT_EQ(expired.reason, refusal::policy);
    EXPECT_EQ(expired.status, 403);
    EXPECT_TRUE(check_policy(route_to("acme", "llm"), p, p.expires - 1s).admitted());
}

TEST(RelayAdmission, TenantRateIs429WithRetryAfter) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    limits_config limits;
    limits.tenant_rps = 1;
    limits.tenant_burst = 2;  // burst = 2 x the token's rps
    limits.route_rps = 1000;
    limits.route_burst = 1000;
    const auto p = policy_for("acme", 2);  // 2/s, burst 4
    const auto r = route_to("acme", "llm");
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(check_rates(limiter, limits, r, p).admitted()) << i;
    auto a = check_rates(limiter, limits, r, p);
    EXPECT_EQ(a.reason, refusal::tenant_rate);
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.code, "rate_limited");
    EXPECT_EQ(a.retry_after, 1);  // 500 ms, rounded up
    EXPECT_EQ(a.limit(), "tenant_rate");
    EXPECT_EQ(a.message, "tenant acme is over its limit of 2 requests per second; retry after 1 s");
    // Another route of the same tenant shares the tenant's bucket.
    EXPECT_EQ(check_rates(limiter, limits, route_to("acme", "web-1"), p).reason,
              refusal::tenant_rate);
    clock.advance(500ms);
    EXPECT_TRUE(check_rates(limiter, limits, r, p).admitted());
}

TEST(RelayAdmission, RouteRateIs429WithRetryAfter) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    limits_config limits;
    limits.route_rps = 0.1;  // one per 10 s
    limits.route_burst = 1;
    const auto p = policy_for("acme", 1000);
    const auto r = route_to("acme", "llm");
    EXPECT_TRUE(check_rates(limiter, limits, r, p).admitted());
    auto a = check_rates(limiter, limits, r, p);
    EXPECT_EQ(a.reason, refusal::route_rate);
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.code, "rate_limited");
    EXPECT_EQ(a.retry_after, 10);
    EXPECT_EQ(a.limit(), "route_rate");
    EXPECT_TRUE(contains(a.message, "acme/llm is over its limit")) << a.message;
    // Routes have their own buckets.
    EXPECT_TRUE(check_rates(limiter, limits, route_to("acme", "web-1"), p).admitted());
}

TEST(RelayAdmission, TenantRefusalLeavesTheRouteBucketAlone) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    limits_config limits;
    limits.tenant_rps = 1;
    limits.tenant_burst = 1;
    limits.route_rps = 0.1;
    limits.route_burst = 2;
    const auto r = route_to("acme", "llm");
    const auto p = policy_for("acme", 1);                        // 1/s, burst 1
    EXPECT_TRUE(check_rates(limiter, limits, r, p).admitted());  // route bucket 2 -> 1
    EXPECT_EQ(check_rates(limiter, limits, r, p).reason, refusal::tenant_rate);
    clock.advance(1s);
    // Had the refused request taken the route's last token, this would be route_rate.
    EXPECT_TRUE(check_rates(limiter, limits, r, p).admitted());
}

TEST(RelayAdmission, StreamCapIs503) {
    tunnel_entry t;
    t.policy = policy_for("acme", 10, 2);
    const auto r = route_to("acme", "llm");
    t.active_streams = 1;
    EXPECT_TRUE(check_streams(r, t).admitted());
    t.active_streams = 2;
    auto a = check_streams(r, t);
    EXPECT_EQ(a.reason, refusal::stream_limit);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(a.code, "stream_limit");
    EXPECT_EQ(a.retry_after, 1);
    EXPECT_EQ(a.limit(), "streams");
    EXPECT_EQ(a.message,
              "the tunnel for acme/llm already carries 2 concurrent requests (its limit)");
}

TEST(RelayAdmission, TenantCapsAre429) {
    tenant_policy p;
    p.tenant = "acme";
    p.max_tunnels = 2;
    p.max_names = 3;
    EXPECT_TRUE(check_tenant_tunnels(p, 1).admitted());
    auto a = check_tenant_tunnels(p, 2);
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.code, "tunnel_limit");
    EXPECT_EQ(a.limit(), "tunnels_per_tenant");
    EXPECT_NE(a.message.find("acme"), std::string::npos) << a.message;
    EXPECT_TRUE(check_tenant_names(p, "web", 2, false).admitted());
    EXPECT_TRUE(check_tenant_names(p, "web", 3, true).admitted());  // re-requested: not new
    a = check_tenant_names(p, "web", 3, false);
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.code, "name_limit");
    EXPECT_EQ(a.limit(), "names_per_tenant");
    EXPECT_NE(a.message.find("\"web\""), std::string::npos) << a.message;
}

TEST(RelayAdmission, OpenBreakerIs503UntilTheCoolDownPasses) {
    core::manual_clock clock;
    pool::circuit_breaker breaker({2, 10s}, clock);
    const auto r = route_to("acme", "llm");
    EXPECT_TRUE(check_breaker(r, breaker).admitted());
    breaker.on_failure();
    breaker.on_failure();
    auto a = check_breaker(r, breaker);
    EXPECT_EQ(a.reason, refusal::circuit_open);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(a.code, "circuit_open");
    EXPECT_EQ(a.retry_after, 11);  // the rest of the cool-down, plus one
    EXPECT_EQ(a.limit(), "breaker");
    EXPECT_TRUE(contains(a.message, "acme/llm failed 2 times in a row")) << a.message;
    clock.advance(4s);
    EXPECT_EQ(check_breaker(r, breaker).retry_after, 7);
    clock.advance(6s);
    const auto probe = check_breaker(r, breaker);
    EXPECT_TRUE(probe.admitted());  // the half-open probe
    EXPECT_TRUE(probe.probe);
    EXPECT_EQ(check_breaker(r, breaker).reason, refusal::circuit_open);
    // Given back without a verdict (its caller failed): the next is a probe.
    breaker.release_probe();
    EXPECT_TRUE(check_breaker(r, breaker).probe);
    breaker.on_success();
    const auto closed = check_breaker(r, breaker);
    EXPECT_TRUE(closed.admitted());
    EXPECT_FALSE(closed.probe);
}

// count_refusal against a real relay_state: relay_bad_requests_total and limits_hit.
class RelayAdmissionCounts : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("relay_admission_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        const auto secret = (dir_ / "secret").string();
        std::ofstream(secret) << "0123456789abcdef0123456789abcdef\n";
        auto config = dev_config("127.0.0.1:0", "127.0.0.1:0", secret);
        ASSERT_TRUE(config) << config.error().message;
        auto verifier = token_verifier::load(verifier_options_for(*config));
        ASSERT_TRUE(verifier) << verifier.error().message;
        auto identity = ssh::server_identity::ephemeral();
        ASSERT_TRUE(identity) << identity.error().message;
        state_ = std::make_unique<relay_state>(io_, std::move(*config), std::move(*verifier),
                                               std::move(*identity));
    }
    void TearDown() override { fs::remove_all(dir_); }

    double limits_hit(std::string_view which) {
        return state_->metrics.limits_hit.with({which}).value();
    }

    fs::path dir_;
    asio::io_context io_;
    std::unique_ptr<relay_state> state_;
};

TEST_F(RelayAdmissionCounts, EachRefusalBumpsItsCounterAndLimit) {
    auto bad_requests = [&] { return state_->metrics.bad_requests.total(); };
    count_refusal(*state_, admission{});
    EXPECT_EQ(bad_requests() + state_->metrics.limits_hit.total(), 0);

    count_refusal(*state_, check_head(http_problem::header_too_large, "", limits_config{}));
    EXPECT_EQ(bad_requests(), 1);
    EXPECT_EQ(limits_hit("header_size"), 1);

    count_refusal(*state_, check_route(route_request("", "/nothing", "")));
    EXPECT_EQ(bad_requests(), 2);
    EXPECT_EQ(limits_hit("header_size"), 1);

    tunnel_entry t;
    t.policy = policy_for("acme", 10, 0);
    count_refusal(*state_, check_streams(route_to("acme", "llm"), t));
    EXPECT_EQ(limits_hit("streams"), 1);

    count_refusal(*state_, check_tunnel(route_to("acme", "llm"), nullptr));
    EXPECT_EQ(bad_requests(), 2);
    EXPECT_EQ(limits_hit("streams"), 1);
}

}  // namespace
}  // namespace tunnel::relay
