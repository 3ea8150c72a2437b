// Recovery in steps (src/link/escalation.hpp): a link whose only transport
// dies goes through restart_transport and reset_link, then escalates (the
// event, the counter in `tunnel ls` and /metrics) within the documented
// bound; `tunnel up --exit-on-escalate` then exits with status 3.
#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link_test_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::test::links {
namespace {

using fwd::eventually;

TEST(LinkEscalation, DeadOnlyTransportRecoversInStepsThenEscalates) {
    auto s = sshd_fixture::start();
    ASSERT_TRUE(s) << s.error().message;
    auto proxy = fault_proxy::start(s->port());
    ASSERT_TRUE(proxy) << proxy.error().message;
    const auto yaml = fmt::format(
        "links:\n"
        "  db:\n"
        "    target: root@127.0.0.1\n"
        "    options: {}\n"
        "    transports:\n"
        "      - {{type: tcp, name: only, address: '127.0.0.1:{}'}}\n"
        "    keepalive: 1s\n"
        "    failover: {{after_failures: 2}}\n",
        fixture_options(*s), (*proxy)->port());
    auto m = running_manager::start(yaml);
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
    auto st = rm.status("db");
    EXPECT_EQ(st["escalations"], 0);
    EXPECT_EQ(st["recovery_step"], "reconnect");
    ASSERT_TRUE(st["transports"][0].contains("predicted_failure_s"));
    EXPECT_TRUE(st["transports"][0]["predicted_failure_s"].is_null()) << "too few probes";

    // The transport dies: its connection is cut and its port refuses.
    const auto died = steady::now();
    proxy->reset();
    // Bound: 3 steps x after_failures (2) x transports (1) = 6 failed connects,
    // each a refusal plus a backoff of at most max(keepalive, 1 s).
    ASSERT_TRUE(eventually([&] { return !rm.events_of("escalated").empty(); }, 10s))
        << rm.status("db").dump(2);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - died);
    EXPECT_LE(took, 7s);

    // The steps, in order, each once, before the escalation.
    std::vector<std::string> steps;
    for (const auto& e : rm.events()) {
        if (e.value("type", "") == "recovery") steps.push_back(e.value("step", ""));
        if (e.value("type", "") == "escalated") steps.push_back("escalated");
    }
    EXPECT_EQ(steps, (std::vector<std::string>{"restart_transport", "reset_link", "escalated"}));
    const auto esc = rm.events_of("escalated").front();
    EXPECT_EQ(esc["link"], "db");
    EXPECT_EQ(esc["failed_connects"], 6);
    EXPECT_EQ(esc["transport"], "only");
    EXPECT_FALSE(esc.value("error", "").empty()) << esc.dump();

    st = rm.status("db");
    EXPECT_EQ(st["escalations"], 1);
    EXPECT_EQ(st["recovery_step"], "escalate");
    EXPECT_EQ(st["state"], "down");
    // Once per outage: more failed connects do not escalate again.
    const auto failures = st["transports"][0]["connect_failures"].get<int>();
    ASSERT_TRUE(eventually(
        [&] { return rm.status("db")["transports"][0]["connect_failures"] > failures + 1; }, 10s));
    EXPECT_EQ(rm.events_of("escalated").size(), 1u);
}

TEST(LinkEscalation, ExitOnEscalateExitsWithStatusThree) {
    auto h = temp_dir::create("tunnel-escalate");
    ASSERT_TRUE(h);
    const auto dead = local_port();  // nothing listens there
    const auto status_port = local_port();
    const auto file = h->file("links.yaml");
    ASSERT_TRUE(
        write_text_file(file, fmt::format("links:\n"
                                          "  db:\n"
                                          "    target: root@127.0.0.1\n"
                                          "    options: {{Port: {}, ConnectTimeout: 2}}\n"
                                          "    transports: [{{type: tcp, name: dead}}]\n"
                                          "    keepalive: 1s\n"
                                          "    failover: {{after_failures: 1}}\n"
                                          "control: {{socket: {}, status_addr: '127.0.0.1:{}'}}\n",
                                          dead, h->file("c.sock"), status_port)));
    // Without the flag the manager keeps running (and keeps reconnecting).
    auto plain =
        spawn_tunnel({"up", "-F", "/dev/null", file}, h->path(), h->file("out1"), h->file("err1"));
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_FALSE(plain->wait(4s)) << read_text_file(h->file("err1")).value_or("");
    EXPECT_NE(read_text_file(h->file("err1")).value_or("").find("escalating"), std::string::npos)
        << read_text_file(h->file("err1")).value_or("");
    // The escalation on /metrics, and the prediction gauge (none: no probes).
    auto metrics =
        http_request(status_port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5s);
    ASSERT_TRUE(metrics) << metrics.error().message;
    EXPECT_NE(metrics->body.find("tunnel_link_escalations_total{link=\"db\"} 1"), std::string::npos)
        << metrics->body;
    EXPECT_NE(
        metrics->body.find(
            "tunnel_link_transport_predicted_failure_seconds{link=\"db\",transport=\"dead\"} -1"),
        std::string::npos)
        << metrics->body;
    // The event on the control socket's stream (`tunnel events` replays recent ones).
    cli_options follow;
    follow.timeout = 2s;  // it follows until killed
    auto events = run_tunnel({"events", "--control", h->file("c.sock")}, follow);
    EXPECT_NE(events.out.find("\"type\":\"escalated\""), std::string::npos) << events.describe();
    plain->terminate();

    const auto started = steady::now();
    auto r = run_tunnel({"up", "--exit-on-escalate", "-F", "/dev/null", file});
    EXPECT_EQ(r.exit_code, 3) << r.describe();
    EXPECT_LT(steady::now() - started, 10s);
    EXPECT_NE(r.err.find("escalated; exiting (--exit-on-escalate)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tunnel::test::links
