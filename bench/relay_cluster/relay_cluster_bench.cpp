// bench/relay_cluster: a two-relay cluster on one real redis-server
// (docs/cluster.md), issue 12's table, ratios printed last:
//   hop       req/s through the relay that does not hold the tunnel (B, the
//             proxy hop) against the one that does (A), wrk keep-alive and
//             `Connection: close` on a 1 KiB nginx page, rounds interleaved
//             (target >= 0.8);
//   failover  the owner killed (SIGKILL) --kills times while callers send
//             --rate req/s to B, a new connection each: how long until the
//             tunnel is attached to B again (target p50 <= 1 s, p99 <= 3 s),
//             and how many of those requests did not get a 200 (target 0).
//             A is then restarted on its ports and the client returns to it
//             (--relay-probe-interval 500ms) before the next kill.
// Both relays and the client are the real `tunnel` binary; the relays' rate
// limits are raised so that no answer is a 429.
//
//   relay_cluster_bench [--rounds 3] [--seconds 4] [--kills 10] [--rate 200]
//                       [--wrap-a CMD] [--wrap-b CMD]   (e.g. "valgrind --tool=callgrind")
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::bench {
namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

const std::string cluster_secret = "bench-0123456789abcdef0123456789abcdef";

std::string relay_yaml(const test::redis_fixture& redis, const std::string& node,
                       std::uint16_t internal, const std::string& secret_file) {
    return "limits:\n"
           "  tenant_rps: 1000000\n  tenant_burst: 1000000\n"
           "  route_rps: 1000000\n  route_burst: 1000000\n"
           "  max_streams_per_tunnel: 4096\n  max_connections_per_ip: 100000\n"
           "leases: {grace: 60s}\nqueue: {max_wait: 30s, max_requests: 4096}\n" +
           test::cluster_yaml(redis, node, secret_file, internal);
}

// Callers at `rate` req/s to `port` (a new connection each) until stopped;
// counts answers that were not 200.
class paced_callers {
  public:
    paced_callers(std::uint16_t port, std::string path, int rate)
        : port_(port), path_(std::move(path)), rate_(rate) {
        pacer_ = std::thread([this] { run(); });
    }
    ~paced_callers() { stop(); }
    void stop() {
        if (stopped_.exchange(true)) return;
        pacer_.join();
        for (auto& t : calls_) t.join();
    }
    [[nodiscard]] long sent() const { return sent_; }
    [[nodiscard]] long failed() const { return failed_; }
    // Of those, 502 owner_lost: the request had entered A's tunnel when A was
    // killed (A announced it), so B never sends it again (docs/cluster.md).
    [[nodiscard]] long in_owner() const { return in_owner_; }
    [[nodiscard]] std::string failures() const {
        std::lock_guard lock(mutex_);
        return examples_;
    }

  private:
    void run() {
        const auto start = clk::now();
        for (long i = 0; !stopped_; ++i) {
            std::this_thread::sleep_until(start + i * std::chrono::microseconds(1'000'000 / rate_));
            if (stopped_) break;
            ++sent_;
            calls_.emplace_back([this] {
                auto r = test::http_request(
                    port_,
                    "GET " + path_ + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    30s);
                if (!r || r->status != 200) {
                    ++failed_;
                    if (r && r->status == 502 &&
                        r->body.find("\"owner_lost\"") != std::string::npos)
                        ++in_owner_;
                    std::lock_guard lock(mutex_);
                    if (examples_.size() < 2000)
                        examples_ += (r ? std::to_string(r->status) + " " + r->body.substr(0, 120)
                                        : r.error().message) +
                                     "\n";
                }
            });
        }
    }

    std::uint16_t port_;
    std::string path_;
    int rate_;
    std::atomic<bool> stopped_{false};
    std::atomic<long> sent_{0}, failed_{0}, in_owner_{0};
    std::thread pacer_;
    std::vector<std::thread> calls_;
    mutable std::mutex mutex_;
    std::string examples_;
};

int run(int argc, char** argv) {
    const int rounds = arg_int(argc, argv, "--rounds", 3);
    const int seconds = arg_int(argc, argv, "--seconds", 4);
    const int kills = arg_int(argc, argv, "--kills", 10);
    const int rate = arg_int(argc, argv, "--rate", 200);
    // For profiling either side of the hop: A or B runs under this command,
    // which must exec the relay (e.g. "valgrind --tool=callgrind").
    auto wrap = [&](test::relay_options& o, const char* flag) {
        o.command_prefix = arg_words(argc, argv, flag);
        if (!o.command_prefix.empty()) o.start_timeout = std::chrono::seconds(60);
    };
    auto dir = test::temp_dir::create("tunnel-relay-cluster-bench");
    if (!dir) return 1;
    children procs(*dir);
    auto nginx = nginx_server::start(*dir, procs, {{"1k", std::string(1024, 'x')}});
    if (!nginx) return 1;
    auto redis = test::redis_fixture::start();
    if (!redis) {
        fmt::print(stderr, "cannot start redis-server: {}\n", redis.error().message);
        return 1;
    }
    const auto secret = dir->file("cluster.secret");
    if (!test::write_text_file(secret, cluster_secret, 0600)) return 1;
    auto ia = test::unused_port();
    auto ib = test::unused_port();
    if (!ia || !ib) return 1;
    test::relay_options oa;
    oa.extra_yaml = relay_yaml(*redis, "relay-a", *ia, secret);
    wrap(oa, "--wrap-a");
    auto a = test::relay_fixture::start(oa);
    if (!a) {
        fmt::print(stderr, "relay A: {}\n", a.error().message);
        return 1;
    }
    test::relay_options ob;
    ob.extra_yaml = relay_yaml(*redis, "relay-b", *ib, secret);
    ob.share_secret_of = a->secret_path();
    wrap(ob, "--wrap-b");
    auto b = test::relay_fixture::start(ob);
    if (!b) {
        fmt::print(stderr, "relay B: {}\n", b.error().message);
        return 1;
    }
    auto token = a->mint("bench", "web", "2h", {"--rps", "1000000", "--max-streams", "4096"});
    if (!token) return 1;
    auto client = a->connect(*token, {{"web", nginx->port()}}, true,
                             {"--relay", b->attach_url(), "--relay-probe-interval", "500ms"});
    if (!client) {
        fmt::print(stderr, "tunnel connect: {}\n", client.error().message);
        return 1;
    }
    const std::string path = "/t/bench/web/1k";
    if (!wait_http_ok(a->public_port(), path, 30s) || !wait_http_ok(b->public_port(), path, 30s)) {
        fmt::print(stderr, "the name did not come up on both relays\nA:\n{}\nB:\n{}\n", a->log(),
                   b->log());
        return 1;
    }

    // 1. Owner against non-owner.
    wrk_options keep;
    keep.duration = std::chrono::seconds(seconds);
    wrk_options close = keep;
    close.headers = {"Connection: close"};
    const std::string via_a = fmt::format("http://127.0.0.1:{}{}", a->public_port(), path);
    const std::string via_b = fmt::format("http://127.0.0.1:{}{}", b->public_port(), path);
    std::vector<double> a_keep, b_keep, a_close, b_close;
    // CPU per request of A and B (user + system, /proc) over the close runs,
    // and over the keep-alive ones.
    std::vector<double> cpu_a_via_a, cpu_a_via_b, cpu_b_via_b;
    std::vector<double> keep_cpu_a_via_a, keep_cpu_a_via_b, keep_cpu_b_via_b;
    bool failed = false;
    auto measure = [&](const char* what, const std::string& url, const wrk_options& o,
                       std::vector<double>& into, std::vector<double>* cpu_a = nullptr,
                       std::vector<double>* cpu_b = nullptr) {
        const double a0 = cpu_seconds(a->pid()), b0 = cpu_seconds(b->pid());
        auto w = run_wrk(url, o);
        if (w && w->requests > 0) {
            const auto n = static_cast<double>(w->requests);
            if (cpu_a) cpu_a->push_back((cpu_seconds(a->pid()) - a0) * 1e6 / n);
            if (cpu_b) cpu_b->push_back((cpu_seconds(b->pid()) - b0) * 1e6 / n);
        }
        if (!w || !w->clean()) {
            // The relays' warnings say what the answers that were not 2xx were.
            auto warnings = [](const std::string& log) {
                std::string out;
                std::size_t at = 0, n = 0;
                while (at < log.size() && n < 12) {
                    const auto end = std::min(log.find('\n', at), log.size());
                    const auto line = log.substr(at, end - at);
                    if (line.find("warning") != std::string::npos &&
                        line.find("routing: path") == std::string::npos) {
                        out += "    " + line + "\n";
                        ++n;
                    }
                    at = end + 1;
                }
                return out;
            };
            fmt::print(stderr, "{}: not a valid figure\n{}\nA's warnings:\n{}B's warnings:\n{}",
                       what, w ? w->output : "wrk failed", warnings(a->log()), warnings(b->log()));
            failed = true;
            return;
        }
        into.push_back(w->requests_per_second);
        fmt::print(stderr, "  {}: {:.0f} req/s, p99 {:.2f} ms\n", what, w->requests_per_second,
                   w->p99_ms);
    };
    (void)run_wrk(via_a, keep);  // warm-up
    (void)run_wrk(via_b, keep);
    for (int r = 0; r < rounds && !failed; ++r) {
        fmt::print(stderr, "round {}:\n", r + 1);
        measure("owner A keep-alive", via_a, keep, a_keep, &keep_cpu_a_via_a);
        measure("non-owner B keep-alive", via_b, keep, b_keep, &keep_cpu_a_via_b,
                &keep_cpu_b_via_b);
        measure("owner A Connection: close", via_a, close, a_close, &cpu_a_via_a);
        measure("non-owner B Connection: close", via_b, close, b_close, &cpu_a_via_b, &cpu_b_via_b);
    }
    if (failed) return 1;

    // 2. The owner dies under load.
    std::vector<double> reattach_ms;
    long sent = 0, lost = 0, in_owner = 0;
    std::string lost_examples;
    for (int k = 0; k < kills; ++k) {
        // The tunnel is on A (the client returned to it), not on B.
        if (!a->wait_published("bench", "web", 20s) ||
            !b->wait_published("bench", "web", 20s, false)) {
            fmt::print(stderr, "kill {}: the tunnel did not return to A\n{}\n", k + 1,
                       client->log());
            return 1;
        }
        paced_callers callers(b->public_port(), path, rate);
        std::this_thread::sleep_for(500ms);
        const auto killed = clk::now();
        a->process().signal(SIGKILL);
        if (!b->wait_published("bench", "web", 30s)) {
            fmt::print(stderr, "kill {}: the tunnel never attached to B\n{}\n", k + 1,
                       client->log());
            return 1;
        }
        reattach_ms.push_back(ms_since(killed));
        std::this_thread::sleep_for(1s);
        callers.stop();
        sent += callers.sent();
        lost += callers.failed() - callers.in_owner();
        in_owner += callers.in_owner();
        lost_examples += callers.failures();
        fmt::print(stderr, "kill {}: attached to B after {:.0f} ms; {} of {} requests not 200\n",
                   k + 1, reattach_ms.back(), callers.failed(), callers.sent());
        if (auto up = a->restart(); !up) {
            fmt::print(stderr, "restarting A: {}\n", up.error().message);
            return 1;
        }
    }

    double load[3] = {};
    (void)getloadavg(load, 3);
    fmt::print(
        "Relay cluster (two relays, one redis-server), 1 KiB nginx page; wrk -t2 -c32 -d{}s, "
        "{} interleaved rounds, medians; {} owner kills under {} req/s (load average {:.2f}):\n",
        seconds, rounds, kills, rate, load[0]);
    fmt::print("  keep-alive:        owner {:.0f} req/s, non-owner (hop) {:.0f} req/s\n",
               median(a_keep), median(b_keep));
    fmt::print("  Connection: close: owner {:.0f} req/s, non-owner (hop) {:.0f} req/s\n",
               median(a_close), median(b_close));
    fmt::print(
        "  CPU per request, keep-alive:        A {:.1f} us when called directly; through B: "
        "B {:.1f} us + A {:.1f} us\n",
        median(keep_cpu_a_via_a), median(keep_cpu_b_via_b), median(keep_cpu_a_via_b));
    fmt::print(
        "  CPU per request, Connection: close: A {:.1f} us when called directly; through B: "
        "B {:.1f} us + A {:.1f} us\n",
        median(cpu_a_via_a), median(cpu_b_via_b), median(cpu_a_via_b));
    fmt::print("  re-attach after the owner's death: p50 {:.0f} ms, p99 {:.0f} ms, max {:.0f} ms\n",
               quantile(reattach_ms, 0.5), quantile(reattach_ms, 0.99), quantile(reattach_ms, 1.0));
    if (lost + in_owner > 0)
        fmt::print("  requests not answered 200:\n{}", lost_examples.substr(0, 2000));
    if (in_owner > 0)
        fmt::print(
            "  of which inside A when it was killed (502 owner_lost: A had announced them to B "
            "and passed them into its tunnel; never sent twice): {}\n",
            in_owner);
    fmt::print("ratio non-owner / owner, keep-alive req/s (target >= 0.8): {:.2f}\n",
               median(b_keep) / median(a_keep));
    fmt::print("ratio non-owner / owner, Connection: close req/s (target >= 0.8): {:.2f}\n",
               median(b_close) / median(a_close));
    fmt::print("re-attach p50 (target <= 1000 ms): {:.0f} ms; p99 (target <= 3000 ms): {:.0f} ms\n",
               quantile(reattach_ms, 0.5), quantile(reattach_ms, 0.99));
    fmt::print("requests lost while the tunnel re-attached (target 0): {} of {}{}\n", lost, sent,
               in_owner > 0 ? fmt::format(" (and {} inside A when it was killed)", in_owner)
                            : std::string());
    return 0;
}

}  // namespace
}  // namespace tunnel::bench

int main(int argc, char** argv) {
    return tunnel::bench::run(argc, argv);
}
