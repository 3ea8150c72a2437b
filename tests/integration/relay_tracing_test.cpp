// Tracing through the real relay and `tunnel connect` (docs/relay.md
// "Tracing"): a caller's W3C traceparent reaches the origin with the relay's
// tunnel-hop span as its parent, the relay's spans reach a tiny OTLP/HTTP
// receiver (written here, on 127.0.0.1) with matching ids and parent links,
// a caller without one (or with a malformed one) gets a fresh trace, spans
// are flushed when the relay stops, a dead collector only costs counted
// failures, and with tracing off the caller's fields pass through untouched.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "observe/trace_context.hpp"
#include "support/net.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A tiny HTTP/1.1 server on 127.0.0.1 (port chosen by the kernel) that
// records every request (head fields, Content-Length body) and answers 200
// with `body`, closing each connection. It is both the OTLP/HTTP receiver
// (POST /v1/traces, JSON) and the origin behind `tunnel connect`.
class recording_server {
  public:
    struct request {
        std::string method;
        std::string target;
        std::vector<std::pair<std::string, std::string>> fields;  // names lower-cased
        std::string body;

        [[nodiscard]] std::vector<std::string> all(const std::string& name) const {
            std::vector<std::string> out;
            for (const auto& [n, v] : fields)
                if (n == name) out.push_back(v);
            return out;
        }
    };

    static std::unique_ptr<recording_server> start(std::string body) {
        std::unique_ptr<recording_server> s(new recording_server());
        s->body_ = std::move(body);
        s->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(s->fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::listen(s->fd_, 64) != 0 ||
            ::getsockname(s->fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            return nullptr;
        s->port_ = ntohs(a.sin_port);
        s->thread_ = std::thread([p = s.get()] { p->serve(); });
        return s;
    }
    ~recording_server() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::vector<request> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

  private:
    recording_server() = default;

    void serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            handle(c);
            ::close(c);
        }
    }

    // Reads until `done(data)` or 5 s of silence.
    static bool read_until(int c, std::string& data, const std::function<bool()>& done) {
        char buf[16384];
        while (!done()) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) return false;
            const auto n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) return false;
            data.append(buf, static_cast<std::size_t>(n));
            if (data.size() > (8u << 20)) return false;
        }
        return true;
    }

    void handle(int c) {
        std::string data;
        if (!read_until(c, data, [&] { return data.find("\r\n\r\n") != std::string::npos; }))
            return;
        const auto head_end = data.find("\r\n\r\n");
        request r;
        std::size_t at = data.find("\r\n");
        const std::string line = data.substr(0, at);
        r.method = line.substr(0, line.find(' '));
        r.target = line.substr(r.method.size() + 1, line.rfind(' ') - r.method.size() - 1);
        std::size_t length = 0;
        while (at < head_end) {
            const auto next = data.find("\r\n", at + 2);
            const std::string field = data.substr(at + 2, next - at - 2);
            const auto colon = field.find(':');
            if (colon != std::string::npos) {
                std::string value = field.substr(colon + 1);
                while (!value.empty() && value.front() == ' ') value.erase(0, 1);
                r.fields.emplace_back(lower(field.substr(0, colon)), value);
                if (r.fields.back().first == "content-length") length = std::stoul(value);
            }
            at = next;
        }
        const auto body_at = head_end + 4;
        if (!read_until(c, data, [&] { return data.size() >= body_at + length; })) return;
        r.body = data.substr(body_at, length);
        {
            std::lock_guard lock(mutex_);
            requests_.push_back(std::move(r));
        }
        const auto reply = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: "
            "close\r\n\r\n{}",
            body_.size(), body_);
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::shutdown(c, SHUT_WR);
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::string body_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::vector<request> requests_;
    std::thread thread_;
};

// Every span the receiver got, each with the service.name it came under.
std::vector<json> received_spans(const recording_server& receiver) {
    std::vector<json> out;
    for (const auto& r : receiver.requests()) {
        if (r.method != "POST" || r.target != "/v1/traces") continue;
        const auto body = json::parse(r.body, nullptr, false);
        if (body.is_discarded()) continue;
        for (const auto& rs : body.value("resourceSpans", json::array())) {
            std::string service;
            for (const auto& a :
                 rs.value("resource", json::object()).value("attributes", json::array()))
                if (a.value("key", "") == "service.name")
                    service = a["value"].value("stringValue", "");
            for (const auto& ss : rs.value("scopeSpans", json::array()))
                for (auto span : ss.value("spans", json::array())) {
                    span["service"] = service;
                    out.push_back(std::move(span));
                }
        }
    }
    return out;
}

// The spans of one trace, by name.
std::map<std::string, json> spans_of(const recording_server& receiver, const std::string& trace) {
    std::map<std::string, json> out;
    for (auto& s : received_spans(receiver))
        if (s.value("traceId", "") == trace) out[s.value("name", "")] = s;
    return out;
}

json attribute(const json& span, const std::string& key) {
    for (const auto& a : span.value("attributes", json::array()))
        if (a.value("key", "") == key) return a["value"];
    return nullptr;
}

std::uint64_t nanos(const json& span, const char* key) {
    return std::stoull(span.value(key, std::string("0")));
}

constexpr const char* caller_trace = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* caller_span = "b7ad6b7169203331";

class RelayTracing : public ::testing::Test {
  protected:
    // A relay with `tracing_yaml` (may be empty: tracing off), `tunnel connect`
    // publishing acme/web, and the origin behind it.
    void start(const std::string& tracing_yaml) {
        origin = recording_server::start("hello from the origin");
        ASSERT_TRUE(origin);
        relay_options o;
        o.extra_yaml = tracing_yaml;
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto tok = relay->mint("acme", "web");
        ASSERT_TRUE(tok) << tok.error().message;
        auto c = relay->connect(*tok, {{"web", origin->port()}});
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
    }

    void start_traced(const std::string& more = "", const std::string& interval = "100ms") {
        receiver = recording_server::start("{}");
        ASSERT_TRUE(receiver);
        start(
            fmt::format("tracing:\n  otlp_endpoint: http://127.0.0.1:{}/v1/traces\n"
                        "  service_name: relay-under-test\n  export_interval: {}\n{}",
                        receiver->port(), interval, more));
    }

    // GET /t/acme/web/PATH with `fields` (full lines); the origin's view of it.
    recording_server::request get(const std::string& path, const std::string& fields) {
        const auto before = origin->requests().size();
        auto r = http_request(relay->public_port(),
                              fmt::format("GET /t/acme/web{} HTTP/1.1\r\nHost: x\r\n{}Connection: "
                                          "close\r\n\r\n",
                                          path, fields));
        EXPECT_TRUE(r) << r.error().message;
        EXPECT_EQ(r ? r->status : 0, 200) << (r ? r->raw : "") << relay->log() << client->log();
        EXPECT_EQ(r ? r->body : "", "hello from the origin");
        const auto seen = origin->requests();
        EXPECT_EQ(seen.size(), before + 1);
        return seen.empty() ? recording_server::request{} : seen.back();
    }

    // The origin's traceparent, parsed (fails the test when absent or bad).
    observe::trace_parent origin_parent(const recording_server::request& r) {
        const auto tp = r.all("traceparent");
        EXPECT_EQ(tp.size(), 1u);
        auto p = tp.empty() ? std::nullopt : observe::parse_traceparent(tp[0]);
        EXPECT_TRUE(p) << (tp.empty() ? "(none)" : tp[0]);
        return p.value_or(observe::trace_parent{});
    }

    std::map<std::string, json> wait_spans(const std::string& trace, std::size_t n) {
        std::map<std::string, json> spans;
        EXPECT_TRUE(
            eventually([&] { return (spans = spans_of(*receiver, trace)).size() >= n; }, 10s))
            << "trace " << trace << ": " << spans.size() << " spans\n"
            << relay->log();
        return spans;
    }

    std::unique_ptr<recording_server> origin;
    std::unique_ptr<recording_server> receiver;
    std::optional<relay_fixture> relay;
    std::optional<relay_client> client;
};

TEST_F(RelayTracing, CallersTraceReachesTheOriginUnderTheHopAndTheSpansReachTheCollector) {
    start_traced("  log_spans: true\n");
    const auto seen =
        get("/a", fmt::format("traceparent: 00-{}-{}-01\r\ntracestate: congo=t61rcWkgMzE\r\n",
                              caller_trace, caller_span));
    const auto parent = origin_parent(seen);
    EXPECT_EQ(observe::to_hex(parent.trace), caller_trace);
    EXPECT_NE(observe::to_hex(parent.parent), caller_span);  // the relay's hop, not the caller
    EXPECT_TRUE(parent.sampled());
    EXPECT_EQ(seen.all("tracestate"), std::vector<std::string>{"congo=t61rcWkgMzE"});

    auto spans = wait_spans(caller_trace, 4);
    ASSERT_EQ(spans.count("relay.request"), 1u) << json(spans).dump();
    ASSERT_EQ(spans.count("relay.admission"), 1u);
    ASSERT_EQ(spans.count("relay.tunnel_hop"), 1u);
    ASSERT_EQ(spans.count("relay.origin_ttfb"), 1u);
    EXPECT_EQ(spans.count("relay.queue"), 0u);  // it did not wait
    // Copies: a missing field reads as null (a failure, not an assertion).
    json root = spans["relay.request"];
    json hop = spans["relay.tunnel_hop"];
    EXPECT_EQ(root["parentSpanId"], caller_span);
    EXPECT_EQ(root["kind"], 2);
    EXPECT_EQ(root["service"], "relay-under-test");
    EXPECT_EQ(attribute(root, "http.response.status_code")["intValue"], "200");
    EXPECT_EQ(attribute(root, "tunnel.tenant")["stringValue"], "acme");
    EXPECT_EQ(attribute(root, "tunnel.name")["stringValue"], "web");
    EXPECT_EQ(attribute(root, "tunnel.traceparent")["stringValue"], "accepted");
    EXPECT_EQ(spans["relay.admission"]["parentSpanId"], root["spanId"]);
    EXPECT_EQ(hop["parentSpanId"], root["spanId"]);
    EXPECT_EQ(hop["kind"], 3);
    // The origin's parent is the hop span.
    EXPECT_EQ(hop["spanId"], observe::to_hex(parent.parent));
    EXPECT_EQ(spans["relay.origin_ttfb"]["parentSpanId"], hop["spanId"]);
    // The hop and the wait for the origin lie within the request.
    EXPECT_LE(nanos(root, "startTimeUnixNano"), nanos(hop, "startTimeUnixNano"));
    EXPECT_LE(nanos(hop, "startTimeUnixNano"),
              nanos(spans["relay.origin_ttfb"], "startTimeUnixNano"));
    EXPECT_LE(nanos(hop, "endTimeUnixNano"), nanos(root, "endTimeUnixNano"));
    EXPECT_LT(nanos(root, "startTimeUnixNano"), nanos(root, "endTimeUnixNano"));
    // log_spans: the same spans in the relay's log.
    EXPECT_TRUE(eventually(
        [&] {
            const auto log = relay->log();
            return log.find("span {") != std::string::npos &&
                   log.find(fmt::format("\"trace_id\":\"{}\"", caller_trace)) != std::string::npos;
        },
        5s))
        << relay->log();

    // A caller's unsampled trace goes on (unsampled) and records nothing.
    const std::string quiet = "11111111111111111111111111111111";
    const auto q =
        origin_parent(get("/b", fmt::format("traceparent: 00-{}-{}-00\r\n", quiet, caller_span)));
    EXPECT_EQ(observe::to_hex(q.trace), quiet);
    EXPECT_FALSE(q.sampled());
    const std::string later = "22222222222222222222222222222222";
    (void)get("/c", fmt::format("traceparent: 00-{}-{}-01\r\n", later, caller_span));
    (void)wait_spans(later, 4);
    EXPECT_TRUE(spans_of(*receiver, quiet).empty());
}

TEST_F(RelayTracing, MissingOrMalformedTraceparentStartsAFreshTrace) {
    start_traced();
    const auto fresh = origin_parent(get("/none", ""));
    EXPECT_TRUE(fresh.sampled());  // sample: 1.0 by default
    const auto trace = observe::to_hex(fresh.trace);
    auto spans = wait_spans(trace, 4);
    ASSERT_EQ(spans.count("relay.request"), 1u);
    EXPECT_FALSE(spans["relay.request"].contains("parentSpanId"));
    EXPECT_EQ(attribute(spans["relay.request"], "tunnel.traceparent")["stringValue"], "none");
    EXPECT_EQ(spans["relay.tunnel_hop"]["spanId"], observe::to_hex(fresh.parent));

    // An all-zero trace id, upper-case hex, a bad version: replaced, never
    // passed on, and their tracestate goes with them.
    for (const std::string& bad :
         {fmt::format("00-{}-{}-01", std::string(32, '0'), caller_span),
          fmt::format("00-0AF7651916CD43DD8448EB211C80319C-{}-01", caller_span),
          fmt::format("ff-{}-{}-01", caller_trace, caller_span)}) {
        const auto seen =
            get("/bad", fmt::format("traceparent: {}\r\ntracestate: congo=t61rcWkgMzE\r\n", bad));
        const auto tp = seen.all("traceparent");
        ASSERT_EQ(tp.size(), 1u);
        EXPECT_NE(tp[0], bad);
        const auto replaced = origin_parent(seen);
        EXPECT_NE(observe::to_hex(replaced.trace), caller_trace) << bad;
        EXPECT_TRUE(seen.all("tracestate").empty()) << bad;
        auto s = wait_spans(observe::to_hex(replaced.trace), 4);
        EXPECT_FALSE(s["relay.request"].contains("parentSpanId"));
        EXPECT_EQ(attribute(s["relay.request"], "tunnel.traceparent")["stringValue"], "replaced");
    }
}

TEST_F(RelayTracing, TracingOffPassesTheCallersFieldsThroughUntouched) {
    start("limits:\n  route_rps: 1000\n");  // a config without tracing:
    for (const std::string& tp : {fmt::format("00-{}-{}-01", caller_trace, caller_span),
                                  std::string("not-a-traceparent")}) {
        const auto seen = get("/off", fmt::format("traceparent: {}\r\ntracestate: a=1\r\n", tp));
        EXPECT_EQ(seen.all("traceparent"), std::vector<std::string>{tp});
        EXPECT_EQ(seen.all("tracestate"), std::vector<std::string>{"a=1"});
    }
    EXPECT_EQ(relay->admin_get("/metrics").find("relay_spans_total"), std::string::npos);
}

TEST_F(RelayTracing, SpansQueuedAtShutdownAreSentBeforeTheRelayExits) {
    // No batch would go for a minute: only the shutdown flush sends it.
    start_traced("", "1m");
    const auto fresh = origin_parent(get("/last", ""));
    const auto trace = observe::to_hex(fresh.trace);
    std::this_thread::sleep_for(200ms);
    EXPECT_TRUE(spans_of(*receiver, trace).empty());
    client.reset();
    EXPECT_EQ(relay->process().terminate(10s), 0) << relay->log();
    EXPECT_GE(spans_of(*receiver, trace).size(), 4u) << relay->log();
}

TEST_F(RelayTracing, ADeadCollectorCostsCountedFailuresNotRequests) {
    auto dead = unused_port();
    ASSERT_TRUE(dead);
    start(fmt::format("tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  export_interval: 100ms\n",
                      *dead));
    for (int i = 0; i < 3; ++i) (void)get("/x", "");
    EXPECT_TRUE(eventually(
        [&] {
            return relay->admin_get("/metrics").find("relay_spans_total{outcome=\"failed\"}") !=
                   std::string::npos;
        },
        10s))
        << relay->admin_get("/metrics");
    EXPECT_NE(relay->log().find("tracing: export to"), std::string::npos) << relay->log();
}

}  // namespace
}  // namespace tunnel::test
