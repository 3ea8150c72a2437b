// Usage analytics end to end (docs/relay.md "Usage analytics"): a real
// `tunnel relay` with usage: {database, flush_interval: 100ms}, a real origin
// behind `tunnel connect`, requests through the relay, then GET
// /api/v1/usage and `tunnel usage report` must give the right request, byte
// and error counts and a p95 in the range the requests took; CSV shape;
// hostile query parameters; a forecast from seeded history, with its error.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tunnel_cli.hpp"
#include "usage/usage_store.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string admin_token = "usage-admin-token-0123456789abcdef";

struct usage_relay {
    std::optional<temp_dir> dir;
    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;
    std::string token_file;

    // In `dir` when a test made it already (with a seeded database).
    void start(bool usage = true) {
        if (!dir) {
            ASSERT_NO_FATAL_FAILURE(make_dir());
        }
        token_file = dir->file("admin.token");
        ASSERT_TRUE(write_text_file(token_file, admin_token + "\n", 0600));
        relay_options o;
        o.admin_token = admin_token;
        o.extra_yaml =
            usage ? fmt::format("usage:\n  database: {}\n  flush_interval: 100ms\n", database())
                  : std::string("limits:\n  route_rps: 1000\n");
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto orig = streaming_origin::start();
        ASSERT_TRUE(orig) << orig.error().message;
        origin = std::move(*orig);
    }
    void make_dir() {
        auto d = temp_dir::create("usage-test");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
    }
    [[nodiscard]] std::string database() const { return dir->file("usage.db"); }
    [[nodiscard]] std::string admin_url() const {
        return fmt::format("http://127.0.0.1:{}", relay->admin_port());
    }
    [[nodiscard]] http_reply get(const std::string& path, bool with_token = true) const {
        auto r = http_request(
            relay->admin_port(),
            fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Connection: close\r\n\r\n", path,
                        with_token ? "Authorization: Bearer " + admin_token + "\r\n" : ""));
        return r ? *r : http_reply{};
    }
    [[nodiscard]] http_reply call(const std::string& path) const {
        auto r = http_request(relay->public_port(),
                              fmt::format("GET /t/alice/web{} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          "Connection: close\r\n\r\n",
                                          path));
        return r ? *r : http_reply{};
    }
};

// The tenant's totals once `requests` are in the database (flushed every 100 ms).
std::optional<json> wait_for_requests(const usage_relay& u, const std::string& query,
                                      std::uint64_t requests) {
    json last;
    const bool ok = streaming_origin::wait_until(
        [&] {
            const auto r = u.get("/api/v1/usage?" + query);
            if (r.status != 200) return false;
            last = json::parse(r.body);
            return last["total"]["requests"].get<std::uint64_t>() >= requests;
        },
        5s);
    if (!ok) return std::nullopt;
    return last;
}

TEST(RelayUsage, CountsRequestsBytesErrorsAndLatencyThroughARealTunnel) {
    usage_relay u;
    ASSERT_NO_FATAL_FAILURE(u.start());
    auto token = u.relay->mint("alice", "web");
    ASSERT_TRUE(token) << token.error().message;
    auto client = u.relay->connect(*token, {{"web", u.origin->port()}});
    ASSERT_TRUE(client) << client.error().message;
    const auto published = std::chrono::steady_clock::now();

    // 8 fast requests whose bodies are the request heads the origin got
    // (so the bytes sent to it are known), 3 that take 150 ms, 2 that the
    // origin drops (502 from the relay: errors).
    std::uint64_t bytes_in = 0, bytes_out = 0;
    for (int i = 0; i < 8; ++i) {
        const auto r = u.call("/headers");
        ASSERT_EQ(r.status, 200) << u.relay->log();
        bytes_in += r.body.size();
        bytes_out += r.raw.size();
    }
    for (int i = 0; i < 3; ++i) {
        const auto r = u.call("/slow?ms=150");
        ASSERT_EQ(r.status, 200);
        bytes_out += r.raw.size();
    }
    for (int i = 0; i < 2; ++i) EXPECT_EQ(u.call("/drop").status, 502);
    // A name nobody publishes is not anyone's usage.
    const auto stranger = http_request(u.relay->public_port(),
                                       "GET /t/mallory/web/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       "Connection: close\r\n\r\n");
    ASSERT_TRUE(stranger);
    EXPECT_NE(stranger->status, 200);

    auto j = wait_for_requests(u, "tenant=alice", 13);
    ASSERT_TRUE(j) << "the requests never reached the database\n" << u.relay->log();
    const auto& totals = (*j)["totals"];
    ASSERT_EQ(totals.size(), 1u) << j->dump(2);
    const auto& t = totals[0];
    EXPECT_EQ(t["tenant"], "alice");
    EXPECT_EQ(t["name"], "web");
    EXPECT_EQ(t["requests"], 13);
    EXPECT_EQ(t["errors"], 2);
    EXPECT_EQ(t["bytes_out"].get<std::uint64_t>() >= bytes_out, true) << t.dump();
    // The /drop and /slow requests sent heads too: at least the /headers ones.
    EXPECT_GT(t["bytes_in"].get<std::uint64_t>(), bytes_in) << t.dump();
    EXPECT_LT(t["bytes_in"].get<std::uint64_t>(), bytes_in + 5 * 1024) << t.dump();
    // The 502s carry the relay's own short answer, counted too but small.
    EXPECT_LT(t["bytes_out"].get<std::uint64_t>(), bytes_out + 2 * 1024) << t.dump();
    // 13 answered requests: p95 is the 13th, a 150 ms one.
    const double p95 = t["p95_ms"];
    EXPECT_GE(p95, 150.0 * 0.8) << t.dump();
    EXPECT_LT(p95, 2000.0) << t.dump();
    EXPECT_LE(t["p95_range_ms"][0].get<double>(), p95);
    const double hours = t["tunnel_hours"];
    const double elapsed_h =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - published).count() /
        3600.0;
    EXPECT_GT(hours, 0.0) << t.dump();
    EXPECT_LE(hours, elapsed_h + 5.0 / 3600) << t.dump();
    std::uint64_t row_requests = 0;
    for (const auto& row : (*j)["rows"]) row_requests += row["requests"].get<std::uint64_t>();
    EXPECT_EQ(row_requests, 13u);
    ASSERT_EQ((*j)["forecasts"].size(), 1u);
    EXPECT_EQ((*j)["forecasts"][0]["status"], "insufficient history");
    EXPECT_FALSE((*j)["forecasts"][0].contains("requests_next_7d"));

    // CSV: a header, one line per hour, a total line; 9 fields each.
    const auto csv = u.get("/api/v1/usage?tenant=alice&format=csv");
    ASSERT_EQ(csv.status, 200);
    EXPECT_NE(csv.head.find("text/csv"), std::string::npos);
    EXPECT_EQ(csv.body.rfind("hour,tenant,name,requests,bytes_in,bytes_out,tunnel_hours,errors,"
                             "p95_ms\r\n",
                             0),
              0u);
    EXPECT_NE(csv.body.find("\r\ntotal,alice,web,13,"), std::string::npos) << csv.body;

    // The CLI: a table, CSV and JSON from the same endpoint.
    const std::vector<std::string> base{
        "usage", "report", "--relay", u.admin_url(), "--admin-token-file", u.token_file};
    auto args = base;
    args.insert(args.end(), {"--tenant", "alice"});
    auto table = run_tunnel(args);
    ASSERT_TRUE(table.ok()) << table.describe();
    EXPECT_NE(table.out.find("TENANT"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("alice"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find(" 13 "), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("insufficient history"), std::string::npos) << table.out;
    args.push_back("--csv");
    auto csv_cli = run_tunnel(args);
    ASSERT_TRUE(csv_cli.ok()) << csv_cli.describe();
    EXPECT_EQ(csv_cli.out.rfind("hour,tenant,name,", 0), 0u) << csv_cli.out;
    auto json_args = base;
    json_args.push_back("--json");
    auto json_cli = run_tunnel(json_args);
    ASSERT_TRUE(json_cli.ok()) << json_cli.describe();
    EXPECT_EQ(json::parse(json_cli.out)["total"]["requests"], 13);

    // The relay stops by itself and writes the last counts: a request made
    // just before the stop is in the database afterwards.
    ASSERT_EQ(u.call("/headers").status, 200);
    client->process().terminate();
    EXPECT_EQ(u.relay->process().terminate(10s), 0) << u.relay->log();
    auto store = usage::usage_store::open(u.database());
    ASSERT_TRUE(store) << store.error().message;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auto rows = store->rows("alice", now - 2 * 3600, now + 3600, 100);
    ASSERT_TRUE(rows);
    std::uint64_t stored = 0;
    for (const auto& r : *rows) stored += r.counts.requests;
    EXPECT_EQ(stored, 14u);
}

TEST(RelayUsage, HostileQueriesAre400WithHowToFixThem) {
    usage_relay u;
    ASSERT_NO_FATAL_FAILURE(u.start());
    const std::pair<const char*, const char*> cases[] = {
        {"format=xml", "format=csv"},
        {"from=2026-12-07T00:00:00Z&to=2026-12-01T00:00:00Z", "must be before"},
        {"from=0", "over 93 days"},
        {"tenant=..%2F..%2Fetc", "a-z, 0-9"},
        {"tenant=a%00b", "a-z, 0-9"},
        {"to=tomorrow", "unix seconds"},
        {"sql=1", "unknown parameter"},
        {"from=1&from=2", "given twice"},
    };
    for (const auto& [query, hint] : cases) {
        const auto r = u.get(std::string("/api/v1/usage?") + query);
        EXPECT_EQ(r.status, 400) << query << "\n" << r.body;
        EXPECT_NE(r.body.find(hint), std::string::npos) << query << "\n" << r.body;
    }
    EXPECT_EQ(u.get("/api/v1/usage", false).status, 401);
    // The CLI says what the relay said and exits 2 for a bad query.
    auto bad = run_tunnel({"usage", "report", "--relay", u.admin_url(), "--admin-token-file",
                           u.token_file, "--from", "2026-12-07", "--to", "2026-12-01"});
    EXPECT_EQ(bad.exit_code, 2) << bad.describe();
    EXPECT_NE(bad.err.find("must be before"), std::string::npos) << bad.err;
    auto no_token = run_tunnel({"usage", "report", "--relay", u.admin_url()});
    EXPECT_EQ(no_token.exit_code, 1) << no_token.describe();
    EXPECT_NE(no_token.err.find("--admin-token-file"), std::string::npos) << no_token.err;
    auto bad_url = run_tunnel({"usage", "report", "--relay", "https://127.0.0.1:1"});
    EXPECT_EQ(bad_url.exit_code, 2) << bad_url.describe();
    EXPECT_NE(bad_url.err.find("http://HOST:PORT"), std::string::npos) << bad_url.err;
}

TEST(RelayUsage, ARelayWithoutUsageSaysHowToTurnItOn) {
    usage_relay u;
    ASSERT_NO_FATAL_FAILURE(u.start(false));
    const auto r = u.get("/api/v1/usage");
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(r.body.find("usage: {database: PATH}"), std::string::npos) << r.body;
}

TEST(RelayUsage, SeededHistoryGivesAForecastWithItsBacktestError) {
    usage_relay v;
    ASSERT_NO_FATAL_FAILURE(v.make_dir());
    // Two weeks of history before the relay starts: 50 + i/4 requests in hour i.
    {
        auto store = usage::usage_store::open(v.database());
        ASSERT_TRUE(store) << store.error().message;
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        usage::usage_batch b;
        for (int i = 0; i < 336; ++i)
            b[{"acme", "api", usage::hour_of(now) - (336 - i) * 3600}].requests = 50 + i / 4;
        ASSERT_TRUE(store->add(b));
    }
    ASSERT_NO_FATAL_FAILURE(v.start());

    const auto reply = v.get("/api/v1/usage?tenant=acme");
    ASSERT_EQ(reply.status, 200) << reply.body;
    const auto f = json::parse(reply.body)["forecasts"][0];
    EXPECT_EQ(f["status"], "ok") << f.dump();
    EXPECT_EQ(f["history_hours"], 336);
    // Hours 336 .. 503 of the series: 50 + i/4 each.
    double truth = 0;
    for (int i = 336; i < 504; ++i) truth += 50 + i / 4;
    EXPECT_NEAR(f["requests_next_7d"].get<double>(), truth, 0.03 * truth) << f.dump();
    EXPECT_TRUE(f["plus_minus"].is_number());
    EXPECT_TRUE(f["backtest"]["mae_per_hour"].is_number());
    EXPECT_EQ(f["backtest"]["holdout_hours"], 84);

    auto table = run_tunnel({"usage", "report", "--relay", v.admin_url(), "--admin-token-file",
                             v.token_file, "--tenant", "acme"});
    ASSERT_TRUE(table.ok()) << table.describe();
    EXPECT_NE(table.out.find(fmt::format("{} requests ± {}", f["requests_next_7d"].dump(),
                                         f["plus_minus"].dump())),
              std::string::npos)
        << table.out;
    EXPECT_NE(table.out.find("MAE"), std::string::npos) << table.out;
}

}  // namespace
}  // namespace tunnel::test
