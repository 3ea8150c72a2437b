// The link manager under a stalled primary transport: the link fails over
// within 2 x keepalive, a forward keeps working across the switch (and a
// connection made during the stall is carried, not lost), and the link
// returns to the preferred transport once it is healthy again.
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

    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
    std::unique_ptr<fault_proxy> proxy;
    uint16_t remote_port = local_port();  // the -R port on the server (loopback here)
};

TEST_F(LinkFailover, StalledPrimaryFailsOverWithinTwoKeepalivesAndComesBack) {
    auto m = running_manager::start(yaml("1s"));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
    const auto lp = rm.local_port("db", 0);
    ASSERT_NE(lp, 0);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 5s));
    ASSERT_TRUE(wait_round_trip("127.0.0.1", remote_port, 5s)) << rm.status("db").dump(2);
    // Both lanes connected (start: parallel) before the fault.
    ASSERT_TRUE(
        fwd::eventually([&] { return rm.status("db")["transports"][1]["state"] == "up"; }, 10s))
        << rm.status("db").dump(2);

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
    auto m = running_manager::start(yaml("1s"));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
    ASSERT_TRUE(
        fwd::eventually([&] { return rm.status("db")["transports"][1]["state"] == "up"; }, 10s));
    auto r = rm.request({{"cmd", "switch"}, {"link", "db"}, {"transport", "direct"}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_EQ(rm.active("db"), 1);
    EXPECT_EQ(r["link"]["preferred"]["name"], "direct");
    EXPECT_TRUE(round_trip("127.0.0.1", rm.local_port("db", 0), "on direct"));
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

}  // namespace
}  // namespace tunnel::test::links
