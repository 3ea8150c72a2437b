// `tunnel health` against real sshd servers on loopback: real numbers from
// this machine, a thresholds file it must breach, an unreachable host, the
// JSON shape, and --watch --status-addr scraped over HTTP.
#include <gtest/gtest.h>

#include <sys/statvfs.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

// Thresholds this machine meets whatever else runs on it (the build
// machine's load is anyone's guess).
constexpr const char* lenient =
    "load_per_cpu: 100000\nmemory_available_min: 0\ndisk_used_max: 100\nfailed_units_max: 1000\n";

std::uint64_t local_mem_total_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    while (in >> key >> kib)
        if (key == "MemTotal:") return kib * 1024;
    return 0;
}

class HealthCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-health-test");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        std::string known_hosts;
        for (int i = 0; i < 2; ++i) {
            auto s = sshd_fixture::start();
            ASSERT_TRUE(s) << s.error().message;
            auto kh = read_text_file(s->known_hosts_path());
            ASSERT_TRUE(kh);
            known_hosts += *kh;
            sshd_.push_back(std::move(*s));
        }
        ASSERT_TRUE(write_text_file(dir_->file("known_hosts"), known_hosts, 0600));
        auto closed = unused_port();
        ASSERT_TRUE(closed);
        std::string inv = fmt::format(
            "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n  children:\n"
            "    web:\n      hosts:\n        web1: {{ansible_port: {}}}\n        web2: "
            "{{ansible_port: {}}}\n    gone:\n      hosts:\n        down1: {{ansible_port: {}}}\n",
            sshd_[0].port(), sshd_[1].port(), *closed);
        ASSERT_TRUE(write_text_file(dir_->file("inventory.yml"), inv));
        ASSERT_TRUE(write_text_file(dir_->file("lenient.yml"), lenient));
    }

    std::vector<std::string> args(std::vector<std::string> extra) const {
        std::vector<std::string> a{"health",
                                   "-i",
                                   dir_->file("inventory.yml"),
                                   "-F",
                                   "/dev/null",
                                   "--private-key",
                                   sshd_[0].client_key_path(),
                                   "-o",
                                   "UserKnownHostsFile=" + dir_->file("known_hosts"),
                                   "-o",
                                   "GlobalKnownHostsFile=/dev/null",
                                   "-o",
                                   "StrictHostKeyChecking=yes"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    static nlohmann::json parse_json(const std::string& text) {
        auto j = nlohmann::json::parse(text, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << text;
        return j;
    }

    std::optional<temp_dir> dir_;
    std::vector<sshd_fixture> sshd_;
};

TEST_F(HealthCli, HealthyHostsExitZeroWithThisMachinesNumbers) {
    auto r =
        run_tunnel(args({"--limit", "web", "--thresholds", dir_->file("lenient.yml"), "--json"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    auto doc = parse_json(r.out);
    ASSERT_EQ(doc["hosts"].size(), 2u) << r.out;
    struct statvfs root {};
    ASSERT_EQ(::statvfs("/", &root), 0);
    const auto root_size = static_cast<std::uint64_t>(root.f_blocks) * root.f_frsize;
    for (const auto& h : doc["hosts"]) {
        SCOPED_TRACE(h.dump());
        EXPECT_EQ(h["status"], "ok");
        EXPECT_EQ(h["up"], true);
        EXPECT_EQ(h["load"]["cpus"].get<long>(), ::sysconf(_SC_NPROCESSORS_ONLN));
        EXPECT_GE(h["load"]["1m"].get<double>(), 0.0);
        EXPECT_EQ(h["memory"]["total_bytes"].get<std::uint64_t>(), local_mem_total_bytes());
        EXPECT_LE(h["memory"]["available_bytes"].get<std::uint64_t>(),
                  h["memory"]["total_bytes"].get<std::uint64_t>());
        bool saw_root = false;
        for (const auto& d : h["disks"]) {
            EXPECT_NE(d["fstype"], "tmpfs") << "pseudo filesystems are not disks";
            if (d["mount"] != "/") continue;
            saw_root = true;
            EXPECT_EQ(d["size_bytes"].get<std::uint64_t>(), root_size);
            EXPECT_GT(d["used_percent"].get<double>(), 0.0);
        }
        EXPECT_TRUE(saw_root);
        // Same clock on both ends: the skew is within the measured round trip.
        ASSERT_TRUE(h["clock"].is_object());
        EXPECT_LE(std::abs(h["clock"]["skew_seconds"].get<double>()),
                  h["clock"]["uncertainty_seconds"].get<double>() + 0.05);
        EXPECT_TRUE(h["failed_units"].contains("known"));
        EXPECT_TRUE(h["checks"].is_array());
    }
    EXPECT_EQ(doc["summary"]["ok"], 2);
    EXPECT_EQ(doc["thresholds"]["disk_used_max"], 100.0);

    auto text = run_tunnel(args({"--limit", "web1", "--thresholds", dir_->file("lenient.yml")}));
    ASSERT_EQ(text.exit_code, 0) << text.describe() << text.out;
    EXPECT_NE(text.out.find("web1  OK  root@127.0.0.1:"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("OK      disk /"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("1 host(s): 1 ok, 0 breach"), std::string::npos) << text.out;
}

TEST_F(HealthCli, AThresholdThisMachineBreachesExitsOneNamingIt) {
    // Every real filesystem has something on it: "used above 0%" must breach.
    ASSERT_TRUE(write_text_file(dir_->file("strict.yml"),
                                "load_per_cpu: 100000\nmemory_available_min: 0\ndisk_used_max: 0\n"
                                "failed_units_max: 1000\n"));
    auto r = run_tunnel(args({"--limit", "web1", "--thresholds", dir_->file("strict.yml")}));
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    EXPECT_NE(r.out.find("web1  BREACH  root@127.0.0.1:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("BREACH  disk /"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("max 0%"), std::string::npos) << r.out;

    auto j =
        run_tunnel(args({"--limit", "web1", "--thresholds", dir_->file("strict.yml"), "--json"}));
    EXPECT_EQ(j.exit_code, 1) << j.describe();
    auto doc = parse_json(j.out);
    EXPECT_EQ(doc["hosts"][0]["status"], "breach");
    bool named = false;
    for (const auto& c : doc["hosts"][0]["checks"])
        named = named || (c["check"] == "disk /" && c["status"] == "breach" && c["limit"] == 0.0);
    EXPECT_TRUE(named) << j.out;
}

TEST_F(HealthCli, BadThresholdsFileIsUsageErrorWithPathAndLine) {
    ASSERT_TRUE(write_text_file(dir_->file("bad.yml"), "disk_used_max: 80\nload_per_cpu: lots\n"));
    auto r = run_tunnel(args({"--thresholds", dir_->file("bad.yml")}));
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find(dir_->file("bad.yml") + ": load_per_cpu: must be a number"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("(line 2)"), std::string::npos) << r.err;
}

TEST_F(HealthCli, UnreachableHostExitsFourAndTheOthersAreStillRead) {
    auto r = run_tunnel(args({"--thresholds", dir_->file("lenient.yml"), "--json"}));
    EXPECT_EQ(r.exit_code, 4) << r.describe() << r.out;
    auto doc = parse_json(r.out);
    ASSERT_EQ(doc["hosts"].size(), 3u);
    EXPECT_EQ(doc["hosts"][2]["host"], "down1");
    EXPECT_EQ(doc["hosts"][2]["status"], "unreachable");
    EXPECT_EQ(doc["hosts"][2]["up"], false);
    EXPECT_TRUE(doc["hosts"][2]["error"].is_string());
    EXPECT_EQ(doc["hosts"][0]["status"], "ok");
    EXPECT_EQ(doc["hosts"][1]["status"], "ok");
    EXPECT_EQ(doc["summary"]["unreachable"], 1);
}

TEST_F(HealthCli, UsageErrors) {
    auto r = run_tunnel(args({"--status-addr", "127.0.0.1:0"}));
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find("--watch"), std::string::npos) << r.err;
    auto off = run_tunnel(args({"--watch", "1s", "--status-addr", "0.0.0.0:9101"}));
    EXPECT_EQ(off.exit_code, 2) << off.describe();
    EXPECT_NE(off.err.find("loopback"), std::string::npos) << off.err;
    EXPECT_NE(off.err.find("--status-token-file"), std::string::npos) << off.err;
    auto w = run_tunnel(args({"--watch", "0s"}));
    EXPECT_EQ(w.exit_code, 2) << w.describe();
}

TEST_F(HealthCli, BareWatchTakesTheDefaultIntervalAndSigintEndsIt) {
    auto c = spawn_tunnel(
        args({"--limit", "web1", "--thresholds", dir_->file("lenient.yml"), "--watch", "--json"}),
        dir_->path(), dir_->file("out"), dir_->file("err"));
    ASSERT_TRUE(c) << c.error().message;
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline &&
           (out = read_text_file(dir_->file("out")).value_or("")).find('\n') == std::string::npos)
        std::this_thread::sleep_for(20ms);
    auto doc = parse_json(out.substr(0, out.find('\n')));
    EXPECT_EQ(doc["round"], 1) << read_text_file(dir_->file("err")).value_or("");
    EXPECT_EQ(doc["hosts"][0]["status"], "ok");
    c->signal(SIGINT);
    auto code = c->wait(10s);
    ASSERT_TRUE(code) << "still running 10 s after SIGINT";
    EXPECT_EQ(*code, 0);
    EXPECT_EQ(read_text_file(dir_->file("out")).value_or("").find("\"round\":2"), std::string::npos)
        << "the default interval is 10 s, not a busy loop";
}

// A host that accepts the TCP connection and never speaks holds the round
// until --timeout; SIGINT ends it at once, with 130.
TEST_F(HealthCli, SigintDuringARoundEndsItAtOnce) {
    auto silent = listen_loopback();
    ASSERT_GE(silent.fd, 0);
    ASSERT_TRUE(write_text_file(
        dir_->file("silent.yml"),
        fmt::format("all:\n  hosts:\n    mute1: {{ansible_host: 127.0.0.1, ansible_port: {}, "
                    "ansible_user: root}}\n",
                    silent.port)));
    auto a = args({"--timeout", "60s"});
    a[2] = dir_->file("silent.yml");
    auto c = spawn_tunnel(a, dir_->path(), dir_->file("out"), dir_->file("err"));
    ASSERT_TRUE(c) << c.error().message;
    std::this_thread::sleep_for(1s);  // the connection is up and waiting for the banner
    ASSERT_TRUE(c->running());
    const auto sent = std::chrono::steady_clock::now();
    c->signal(SIGINT);
    auto code = c->wait(10s);
    ::close(silent.fd);
    ASSERT_TRUE(code) << "still running 10 s after SIGINT";
    EXPECT_EQ(*code, 130) << read_text_file(dir_->file("err")).value_or("");
    EXPECT_LT(std::chrono::steady_clock::now() - sent, 5s);
}

// GET http://127.0.0.1:port/path: the body, or nullopt.
std::optional<std::string> http_body(std::uint16_t port, const std::string& path) {
    int fd = connect_tcp("127.0.0.1", port);
    if (fd < 0) return std::nullopt;
    auto got = exchange(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 3000);
    ::close(fd);
    if (!got || got->rfind("HTTP/1.1 200 ", 0) != 0) return std::nullopt;
    auto head_end = got->find("\r\n\r\n");
    if (head_end == std::string::npos) return std::nullopt;
    return got->substr(head_end + 4);
}

TEST_F(HealthCli, WatchServesMetricsThatMatchTheJsonAndStopsOnSigint) {
    std::optional<child_process> child;
    std::uint16_t port = 0;
    for (int attempt = 0; attempt < 3 && !child; ++attempt) {
        auto p = unused_port();
        ASSERT_TRUE(p);
        port = *p;
        std::remove(dir_->file("out").c_str());
        auto c = spawn_tunnel(args({"--thresholds", dir_->file("lenient.yml"), "--json", "--watch",
                                    "60s", "--status-addr", fmt::format("127.0.0.1:{}", port)}),
                              dir_->path(), dir_->file("out"), dir_->file("err"));
        ASSERT_TRUE(c) << c.error().message;
        if (wait_for_port(port, 10s)) child.emplace(std::move(*c));
    }
    ASSERT_TRUE(child) << read_text_file(dir_->file("err")).value_or("");

    // The first round's document (one line), then the metrics of that round.
    std::string first;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        auto out = read_text_file(dir_->file("out")).value_or("");
        if (auto nl = out.find('\n'); nl != std::string::npos) {
            first = out.substr(0, nl);
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(first.empty()) << read_text_file(dir_->file("err")).value_or("");
    auto doc = parse_json(first);
    EXPECT_EQ(doc["round"], 1);
    auto body = http_body(port, "/metrics");
    ASSERT_TRUE(body);
    std::map<std::string, double> m;
    std::istringstream in(*body);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    EXPECT_EQ(m.at("tunnel_health_rounds_total"), 1);
    EXPECT_EQ(m.at("tunnel_host_up{host=\"down1\"}"), 0);
    for (const auto& h : doc["hosts"]) {
        if (h["host"] == "down1") continue;
        const auto l = fmt::format("{{host=\"{}\"}}", h["host"].get<std::string>());
        SCOPED_TRACE(l);
        EXPECT_EQ(m.at("tunnel_host_up" + l), 1);
        EXPECT_EQ(m.at("tunnel_host_load1" + l), h["load"]["1m"].get<double>());
        EXPECT_EQ(m.at("tunnel_host_load15" + l), h["load"]["15m"].get<double>());
        EXPECT_EQ(m.at("tunnel_host_cpus" + l), h["load"]["cpus"].get<double>());
        EXPECT_EQ(m.at("tunnel_host_memory_available_bytes" + l),
                  h["memory"]["available_bytes"].get<double>());
        EXPECT_EQ(m.at("tunnel_host_clock_skew_seconds" + l),
                  h["clock"]["skew_seconds"].get<double>());
        for (const auto& d : h["disks"])
            EXPECT_EQ(
                m.at(fmt::format("tunnel_host_disk_used_bytes{{host=\"{}\",mount=\"{}\"}}",
                                 h["host"].get<std::string>(), d["mount"].get<std::string>())),
                d["used_bytes"].get<double>());
    }
    auto status = http_body(port, "/status");
    ASSERT_TRUE(status);
    EXPECT_EQ(parse_json(*status), doc);

    child->signal(SIGINT);
    auto code = child->wait(10s);
    ASSERT_TRUE(code) << "still running 10 s after SIGINT";
    EXPECT_EQ(*code, 4) << "the last round's status: down1 is unreachable";
}

}  // namespace
}  // namespace tunnel::test
