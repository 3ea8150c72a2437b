// Thresholds held against samples, and the three renderings of a round
// (text, JSON, Prometheus) telling the same numbers.
#include "health/evaluation.hpp"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "health/health_report.hpp"

namespace tunnel::health {
namespace {

host_sample sample() {
    host_sample s;
    s.host_time = 1000.0;
    s.cpus = 2;
    s.load = load_average{0.5, 3.0, 1.0};
    memory_info m;
    m.total_bytes = 1000;
    m.available_bytes = 150;
    s.memory = m;
    mount_usage root;
    root.mount = "/";
    root.fstype = "ext4";
    root.size_bytes = 100;
    root.used_bytes = 80;
    root.available_bytes = 10;  // 80 / (80 + 10) = 88.9%
    s.mounts = std::vector<mount_usage>{root};
    s.systemd = true;
    s.units = failed_units{0, {}};
    return s;
}

const check_result& find(const std::vector<check_result>& checks, const std::string& name) {
    for (const auto& c : checks)
        if (c.check == name) return c;
    static check_result none;
    ADD_FAILURE() << "no check " << name;
    return none;
}

TEST(HealthEvaluation, EachCheckAgainstItsThreshold) {
    thresholds t;
    auto c = evaluate(sample(), clock_reading{0.2, 0.01}, t);
    EXPECT_EQ(find(c, "load").status, check_status::ok);  // 3.0 / 2 = 1.5 <= 2
    EXPECT_DOUBLE_EQ(*find(c, "load").value, 1.5);
    EXPECT_EQ(find(c, "memory").status, check_status::ok);  // 15% >= 10%
    EXPECT_EQ(find(c, "disk /").status, check_status::ok);  // 88.9% <= 90%
    EXPECT_EQ(find(c, "failed_units").status, check_status::ok);
    EXPECT_EQ(find(c, "clock_skew").status, check_status::ok);

    t.load_per_cpu = 1.4;
    t.memory_available_min = 20;
    t.disk_used_max = 88;
    auto b = evaluate(sample(), clock_reading{0.2, 0.01}, t);
    EXPECT_EQ(find(b, "load").status, check_status::breach);
    EXPECT_EQ(find(b, "memory").status, check_status::breach);
    EXPECT_EQ(find(b, "disk /").status, check_status::breach);
    EXPECT_NE(find(b, "disk /").message.find("88.9% used"), std::string::npos)
        << find(b, "disk /").message;

    auto s = sample();
    s.units = failed_units{2, {"a.service", "b.service"}};
    auto u = evaluate(s, std::nullopt, thresholds{});
    EXPECT_EQ(find(u, "failed_units").status, check_status::breach);
    EXPECT_NE(find(u, "failed_units").message.find("a.service, b.service"), std::string::npos);
    EXPECT_EQ(find(u, "clock_skew").status, check_status::unknown);
}

TEST(HealthEvaluation, ClockSkewNeedsTheRoundTripToTell) {
    thresholds t;  // 1 s
    auto at = [&](double skew, double uncertainty) {
        auto c = evaluate(sample(), clock_reading{skew, uncertainty}, t);
        return find(c, "clock_skew").status;
    };
    EXPECT_EQ(at(0.9, 0.05), check_status::ok);
    EXPECT_EQ(at(-1.5, 0.1), check_status::breach);
    EXPECT_EQ(at(1.5, 0.1), check_status::breach);
    EXPECT_EQ(at(0.9, 0.3), check_status::unknown);  // could be 1.2
    EXPECT_EQ(at(1.2, 0.3), check_status::unknown);  // could be 0.9

    host_sample s;
    s.host_time = 1010.0;
    auto r = read_clock(s, 1000.0, 1000.4);
    ASSERT_TRUE(r);
    EXPECT_NEAR(r->skew_seconds, 9.8, 1e-9);
    EXPECT_NEAR(r->uncertainty_seconds, 0.2, 1e-9);
    s.host_time_whole_seconds = true;
    r = read_clock(s, 1000.0, 1000.4);
    EXPECT_NEAR(r->skew_seconds, 10.3, 1e-9);
    EXPECT_NEAR(r->uncertainty_seconds, 0.7, 1e-9);
    EXPECT_FALSE(read_clock(host_sample{}, 1000.0, 1000.4));
}

TEST(HealthEvaluation, MissingFactsAreUnknownAndProblemsInvalid) {
    host_sample s;  // nothing reported
    s.units_unknown_why = "no systemd on the host";
    auto c = evaluate(s, std::nullopt, thresholds{});
    for (const auto& x : c) EXPECT_EQ(x.status, check_status::unknown) << x.check;
    EXPECT_EQ(find(c, "failed_units").message, "no systemd on the host");

    host_report h;
    h.reached = h.up = true;
    h.checks = c;
    EXPECT_EQ(h.health(), host_health::ok) << "unknown is not a breach";

    s.problems.push_back("cpus '0': not a whole number");
    h.checks = evaluate(s, std::nullopt, thresholds{});
    EXPECT_EQ(h.checks.front().check, "probe");
    EXPECT_EQ(h.health(), host_health::invalid);
}

TEST(HealthReport, ExitCodesFollowTunnelRun) {
    host_report ok, breach, down;
    ok.reached = ok.up = true;
    ok.checks = evaluate(sample(), std::nullopt, thresholds{});
    breach = ok;
    breach.checks[1].status = check_status::breach;
    down.error = "connection refused";
    EXPECT_EQ(exit_code({ok}), 0);
    EXPECT_EQ(exit_code({ok, breach}), 1);
    EXPECT_EQ(exit_code({ok, down}), 4);
    EXPECT_EQ(exit_code({breach, down}), 5);
    host_report garbled;
    garbled.reached = true;
    garbled.error = "no header";
    EXPECT_EQ(garbled.health(), host_health::invalid);
    EXPECT_EQ(exit_code({garbled}), 1);
}

// Every metric line's value equals the JSON's number for it.
TEST(HealthReport, PrometheusAndJsonCarryTheSameNumbers) {
    host_report h;
    h.name = "web\"1";
    h.reached = h.up = true;
    h.sample = sample();
    h.clock = clock_reading{-0.123456789, 0.01};
    h.checks = evaluate(*h.sample, h.clock, thresholds{});
    host_report down;
    down.name = "db1";
    down.error = "refused";
    auto j = to_json({h, down}, thresholds{});
    auto text = prometheus_text({h, down}, 7);

    std::map<std::string, double> m;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    const auto& hj = j["hosts"][0];
    EXPECT_EQ(m.at("tunnel_host_up{host=\"web\\\"1\"}"), 1);
    EXPECT_EQ(m.at("tunnel_host_up{host=\"db1\"}"), 0);
    EXPECT_EQ(m.count("tunnel_host_load1{host=\"db1\"}"), 0u);
    EXPECT_EQ(m.at("tunnel_host_load5{host=\"web\\\"1\"}"), hj["load"]["5m"].get<double>());
    EXPECT_EQ(m.at("tunnel_host_memory_available_bytes{host=\"web\\\"1\"}"),
              hj["memory"]["available_bytes"].get<double>());
    EXPECT_EQ(m.at("tunnel_host_disk_used_bytes{host=\"web\\\"1\",mount=\"/\"}"),
              hj["disks"][0]["used_bytes"].get<double>());
    EXPECT_EQ(m.at("tunnel_host_clock_skew_seconds{host=\"web\\\"1\"}"),
              hj["clock"]["skew_seconds"].get<double>());
    EXPECT_EQ(m.at("tunnel_host_failed_units{host=\"web\\\"1\"}"), 0);
    EXPECT_EQ(m.at("tunnel_health_rounds_total"), 7);
    EXPECT_EQ(j["summary"]["ok"], 1);
    EXPECT_EQ(j["summary"]["unreachable"], 1);
    EXPECT_EQ(hj["status"], "ok");
    EXPECT_EQ(j["hosts"][1]["status"], "unreachable");

    auto table = format_text({h, down});
    EXPECT_NE(table.find("OK      load"), std::string::npos) << table;
    EXPECT_NE(table.find("db1  UNREACHABLE\n  refused\n"), std::string::npos) << table;
}

}  // namespace
}  // namespace tunnel::health
