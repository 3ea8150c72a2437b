// The link manager under a faulty primary transport (stalled, dropping every
// byte, reset, or slowing down): the link fails over within its bound, a
// forward keeps working across the switch (and a connection made during the
// fault is carried, not lost), and the link returns to the preferred
// transport once it is healthy again. A rising RTT is predicted before it
// crosses the bound.
#include <cstdio>

#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link_test_support.hpp"
#include "support/fault_proxy.hpp"

namespace tunnel::test::links {
namespace {

using fwd::round_trip;
using fwd::wait_round_trip;

class LinkFailover : public ::testing::Test {
  protected:
    void SetUp() override {
        // sshd notices a stalled client within ~3 s and frees its -R ports.
        sshd_options so;
        so.extra_config = {"ClientAliveInterval 1", "ClientAliveCountMax 2"};
        auto s = sshd_fixture::start(so);
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto e = echo_server::start();
        ASSERT_TRUE(e) << e.error().message;
        echo = std::move(*e);
        auto p = fault_proxy::start(sshd->port());
        ASSERT_TRUE(p) << p.error().message;
        proxy = std::move(*p);
    }

    // Two tcp routes to the same sshd: `flaky` through the fault proxy
    // (preferred), `direct` to sshd's own port.
    std::string yaml(std::string_view keepalive, std::string_view extra = {}) {
        return fmt::format(
            "links:\n"
            "  db:\n"
            "    target: root@127.0.0.1\n"
            "    options: {}\n"
            "    transports:\n"
            "      - {{type: tcp, name: flaky, address: '127.0.0.1:{}'}}\n"
            "      - {{type: tcp, name: direct}}\n"
            "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}', '-R 127.0.0.1:{}:127.0.0.1:{}']\n"
            "    keepalive: {}\n"
            "    failover: {{after_failures: 2, rtt_above: 300ms}}\n"
            "    return_after: 2\n"
            "    switch_wait: 10s\n"
            "{}",
            fixture_options(*sshd), proxy->port(), local_port(), echo->port(), remote_port,
            echo->port(), keepalive, extra);
    }

    // Starts the manager on `links` and waits for the state every fault
    // starts from: the link on the preferred transport (0) with its first
    // forward (-L) answering, and the other transport up too (start: parallel).
    void start_on_primary(const std::string& links) {
        auto m = running_manager::start(links);
        ASSERT_TRUE(m) << m.error().message;
        manager = std::move(*m);
        auto& rm = *manager;
        ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
        lp = rm.local_port("db", 0);
        ASSERT_NE(lp, 0);
        ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 5s));
        ASSERT_TRUE(
            fwd::eventually([&] { return rm.status("db")["transports"][1]["state"] == "up"; }, 10s))
            << rm.status("db").dump(2);
    }

    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
    std::unique_ptr<fault_proxy> proxy;
    uint16_t remote_port = local_port();       // the -R port on the server (loopback here)
    std::unique_ptr<running_manager> manager;  // start_on_primary
    uint16_t lp = 0;                           // its -L port
};

TEST_F(LinkFailover, StalledPrimaryFailsOverWithinTwoKeepalivesAndComesBack) {
    ASSERT_NO_FATAL_FAILURE(start_on_primary(yaml("1s")));
    auto& rm = *manager;
    ASSERT_TRUE(wait_round_trip("127.0.0.1", remote_port, 5s)) << rm.status("db").dump(2);

    const int switches_before = rm.status("db")["switches"];
    proxy->set_mode(fault_mode::stall);
    const auto stalled_at = steady::now();
    // A connection opened during the stall: it must be carried, not lost.
    int during = connect_tcp("127.0.0.1", lp);
    ASSERT_GE(during, 0);
    auto failed_over = rm.wait_active("db", 1, 10s);
    ASSERT_TRUE(failed_over) << rm.status("db").dump(2);
    const auto failover_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - stalled_at);
    EXPECT_LE(failover_ms, 2000ms) << "keepalive 1s: failover within 2 x keepalive\n"
                                   << rm.status("db").dump(2);
    RecordProperty("failover_ms", static_cast<int>(failover_ms.count()));
    std::printf("failover after the stall: %lld ms\n", static_cast<long long>(failover_ms.count()));
    auto echoed = exchange(during, "queued during the switch", 10'000);
    ::close(during);
    ASSERT_TRUE(echoed) << echoed.error().message;
    EXPECT_EQ(*echoed, "queued during the switch");
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "after the switch"));
    // -R is requested again on the new session once sshd has let go of the
    // stalled one's listener (ClientAlive: ~3 s).
    EXPECT_TRUE(wait_round_trip("127.0.0.1", remote_port, 15s)) << rm.status("db").dump(2);

    auto st = rm.status("db");
    EXPECT_EQ(st["transport"]["name"], "direct");
    EXPECT_EQ(st["transport"]["type"], "tcp");
    EXPECT_EQ(st["switches"], switches_before + 1);
    EXPECT_FALSE(rm.events_of("switch").empty());
    EXPECT_FALSE(rm.events_of("probe_failed").empty());

    // Recovery: the preferred transport reconnects, passes return_after (2)
    // probes, and the link goes back to it.
    proxy->set_mode(fault_mode::pass);
    const auto recovered_at = steady::now();
    auto back = rm.wait_active("db", 0, 20s);
    ASSERT_TRUE(back) << rm.status("db").dump(2);
    const auto return_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - recovered_at);
    EXPECT_GE(return_ms, 900ms) << "two healthy probes at 1s take at least one interval";
    RecordProperty("return_ms", static_cast<int>(return_ms.count()));
    std::printf("back on the preferred transport: %lld ms\n",
                static_cast<long long>(return_ms.count()));
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "back on the preferred transport"));
    EXPECT_TRUE(wait_round_trip("127.0.0.1", remote_port, 15s)) << rm.status("db").dump(2);
    EXPECT_EQ(rm.status("db")["switches"], switches_before + 2);
    EXPECT_GE(proxy->accepted(), 2) << "a new connection through the recovered proxy";
}

TEST_F(LinkFailover, ASwitchIsManualAndAnUnknownTransportIsRefused) {
    ASSERT_NO_FATAL_FAILURE(start_on_primary(yaml("1s")));
    auto& rm = *manager;
    auto r = rm.request({{"cmd", "switch"}, {"link", "db"}, {"transport", "direct"}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_EQ(rm.active("db"), 1);
    EXPECT_EQ(r["link"]["preferred"]["name"], "direct");
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "on direct"));
    // The preferred one now is `direct`: a healthy `flaky` does not take over.
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(rm.active("db"), 1);

    r = rm.request({{"cmd", "switch"}, {"link", "db"}, {"transport", "carrier-pigeon"}});
    EXPECT_FALSE(r["ok"].get<bool>());
    EXPECT_NE(r["error"].get<std::string>().find("has no transport"), std::string::npos) << r;
    r = rm.request({{"cmd", "status"}, {"link", "nope"}});
    EXPECT_FALSE(r["ok"].get<bool>());

    r = rm.request({{"cmd", "restart"}, {"link", "db"}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    ASSERT_TRUE(rm.wait_active("db", 1, 10s)) << rm.status("db").dump(2);
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    EXPECT_FALSE(rm.events_of("restart").empty());
}

// Bytes vanish both ways on the primary, TCP stays up (no FIN, no RST): the
// same bound as a stall, and a connection opened meanwhile is carried.
TEST_F(LinkFailover, DroppingPrimaryFailsOverWithinTwoKeepalivesAndComesBack) {
    ASSERT_NO_FATAL_FAILURE(start_on_primary(yaml("1s")));
    auto& rm = *manager;

    proxy->set_mode(fault_mode::drop);
    const auto dropped_at = steady::now();
    int during = connect_tcp("127.0.0.1", lp);
    ASSERT_GE(during, 0);
    ASSERT_TRUE(rm.wait_active("db", 1, 10s)) << rm.status("db").dump(2);
    const auto failover_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - dropped_at);
    EXPECT_LE(failover_ms, 2000ms) << rm.status("db").dump(2);
    RecordProperty("failover_ms", static_cast<int>(failover_ms.count()));
    auto echoed = exchange(during, "opened while the primary dropped everything", 10'000);
    ::close(during);
    ASSERT_TRUE(echoed) << echoed.error().message;
    EXPECT_EQ(*echoed, "opened while the primary dropped everything");

    proxy->set_mode(fault_mode::pass);
    ASSERT_TRUE(rm.wait_active("db", 0, 20s)) << rm.status("db").dump(2);
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "back on the preferred transport"));
}

// Every connection of the primary is reset: the loss is noticed at once (no
// probe needs to time out), a connection opened right after it is carried by
// the other transport, and the primary, which accepts again, takes over again
// after return_after healthy probes.
TEST_F(LinkFailover, ResetPrimaryIsNoticedAtOnceAndNothingNewIsLost) {
    ASSERT_NO_FATAL_FAILURE(start_on_primary(yaml("1s")));
    auto& rm = *manager;
    const int accepted_before = proxy->accepted();
    const int switches_before = rm.status("db")["switches"];

    proxy->reset_all();
    const auto reset_at = steady::now();
    // Within well under one keepalive the link has moved (or is already back).
    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.status("db")["switches"].get<int>() > switches_before; }, 900ms))
        << rm.status("db").dump(2);
    RecordProperty("noticed_ms",
                   static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        steady::now() - reset_at)
                                        .count()));
    for (int i = 0; i < 5; ++i)
        EXPECT_TRUE(round_trip("127.0.0.1", lp, fmt::format("after the reset {}", i)))
            << rm.status("db").dump(2);

    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.active("db") == 0 && proxy->accepted() > accepted_before; }, 15s))
        << rm.status("db").dump(2);
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "back on the preferred transport"));
}

// The primary's RTT rises steadily (every chunk held a little longer each
// step) until it passes rtt_above: before it does, `status` predicts the
// crossing with its error; after it does, the link fails over (a probe slower
// than rtt_above is a failed one), and returns once the lag is gone.
TEST_F(LinkFailover, RisingRttIsPredictedThenFailsOverOnTheRttBound) {
    ASSERT_NO_FATAL_FAILURE(start_on_primary(
        fmt::format("links:\n"
                    "  db:\n"
                    "    target: root@127.0.0.1\n"
                    "    options: {}\n"
                    "    transports:\n"
                    "      - {{type: tcp, name: flaky, address: '127.0.0.1:{}'}}\n"
                    "      - {{type: tcp, name: direct}}\n"
                    "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}']\n"
                    "    keepalive: 500ms\n"
                    "    failover: {{after_failures: 2, rtt_above: 400ms}}\n"
                    "    return_after: 2\n",
                    fixture_options(*sshd), proxy->port(), local_port(), echo->port())));
    auto& rm = *manager;

    // Ramp: +10 ms each way every 250 ms, i.e. the RTT grows ~80 ms/s and
    // crosses 400 ms after ~5 s, with ~10 probes on the way.
    std::optional<nlohmann::json> prediction;  // seen while still on the primary
    std::optional<std::chrono::milliseconds> failed_over;
    const auto ramp_start = steady::now();
    for (int step = 1; step <= 60 && !failed_over; ++step) {
        proxy->set_lag(std::chrono::milliseconds(10 * step));
        for (int i = 0; i < 5; ++i) {
            auto st = rm.status("db");
            const auto& p = st["transports"][0]["predicted_failure_s"];
            if (st["transport"].is_object() && st["transport"]["index"] == 0 && p.is_object() &&
                p["in"].get<double>() > 0 && !prediction)
                prediction = p;
            if (st["transport"].is_object() && st["transport"]["index"] == 1) {
                failed_over = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() -
                                                                                    ramp_start);
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
    }
    ASSERT_TRUE(prediction) << "no prediction while the RTT rose\n" << rm.status("db").dump(2);
    // Never a number without its error (reported to 0.1 s: a steady ramp fits
    // a line so well that it rounds to 0).
    ASSERT_TRUE((*prediction)["error"].is_number()) << *prediction;
    EXPECT_GE((*prediction)["error"].get<double>(), 0.0) << *prediction;
    EXPECT_LT((*prediction)["in"].get<double>(), 30.0) << *prediction;
    std::printf("first prediction while rising: %s\n", prediction->dump().c_str());
    ASSERT_TRUE(failed_over) << rm.status("db").dump(2);
    RecordProperty("failover_after_ramp_ms", static_cast<int>(failed_over->count()));
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "on the direct transport"));

    proxy->set_lag(0ms);
    ASSERT_TRUE(rm.wait_active("db", 0, 20s)) << rm.status("db").dump(2);
    EXPECT_TRUE(round_trip("127.0.0.1", lp, "back on the preferred transport"));
}

}  // namespace
}  // namespace tunnel::test::links
