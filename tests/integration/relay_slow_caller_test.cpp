// Slow callers (issue 10, finding 5) against a real `tunnel relay`, a real
// `tunnel connect` and the streaming origin: a caller that stops reading a
// big response, or reads it at a trickle, is cut off by the write deadline
// or the minimum body rate, the channel to the origin is closed (the origin
// sees its write fail) and the stream slot is freed while the caller is still
// connected; a caller that sends its body a byte at a time is answered 408
// instead of holding the slot for as long as it keeps sending; and none of it
// counts against the origin.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A connected socket with a small receive buffer, so a caller that does not
// read stops the relay's writes soon.
int small_reader(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ::close(fd);
    fd = connect_tcp("127.0.0.1", port);
    if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    return fd;
}

bool send_text(int fd, const std::string& text) {
    return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Bytes readable now (0 on EOF: `closed` is set).
std::string read_now(int fd, bool& closed) {
    std::string out;
    char buf[65536];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return out;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            closed = true;
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

class RelaySlowCaller : public ::testing::Test {
  protected:
    void start(const std::string& limits_yaml) {
        relay_options o;
        o.extra_yaml = "limits:\n" + limits_yaml;
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
        auto tok = relay->mint("acme", "big");
        ASSERT_TRUE(tok) << tok.error().message;
        auto c = relay->connect(*tok, {{"big", origin->port()}});
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
        ASSERT_TRUE(relay->wait_published("acme", "big", 10s));
    }

    int in_flight() const {
        auto j = nlohmann::json::parse(relay->admin_get("/api/v1/diagnostics"), nullptr, false);
        return j.is_object() ? j.value("in_flight", -1) : -1;
    }
    std::string breaker() const {
        auto j = nlohmann::json::parse(relay->admin_get("/api/v1/tunnels"), nullptr, false);
        if (!j.is_object() || j["tunnels"].empty()) return "";
        return j["tunnels"][0].value("breaker", "");
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_client> client;
};

TEST_F(RelaySlowCaller, AStalledReaderAndATrickleReaderAreCutOffWhileStillConnected) {
    // 64 KiB/s with 2 s of grace; the write deadline is out of the way.
    start("  min_body_rate: 65536\n  min_body_rate_grace: 2s\n  write_timeout: 60s\n");
    const std::string get_big =
        "GET /t/acme/big/big?size=1073741824 HTTP/1.1\r\nHost: relay.test\r\n\r\n";  // 1 GiB
    const int stalled = small_reader(relay->public_port());
    const int trickle = small_reader(relay->public_port());
    ASSERT_GE(stalled, 0);
    ASSERT_GE(trickle, 0);
    ASSERT_TRUE(send_text(stalled, get_big));
    ASSERT_TRUE(send_text(trickle, get_big));
    ASSERT_TRUE(streaming_origin::wait_until([&] { return in_flight() == 2; }, 5s));

    // The trickle reader takes 1 KiB a second; neither ever closes.
    const auto start_time = steady::now();
    bool trickle_closed = false;
    while (steady::now() - start_time < 20s && origin->bigs_aborted() < 2) {
        char buf[1024];
        pollfd p{trickle, POLLIN, 0};
        if (!trickle_closed && ::poll(&p, 1, 0) > 0 && ::recv(trickle, buf, sizeof buf, 0) <= 0)
            trickle_closed = true;
        std::this_thread::sleep_for(1s);
    }
    const auto took = steady::now() - start_time;
    // Both responses were aborted at the origin (the relay closed their
    // channels), long before a 1 GiB response could have been read, and the
    // relay carries nothing for these callers any more.
    EXPECT_EQ(origin->bigs_aborted(), 2) << relay->log();
    EXPECT_EQ(origin->bigs_completed(), 0);
    EXPECT_LT(took, 15s);
    EXPECT_TRUE(streaming_origin::wait_until([&] { return in_flight() == 0; }, 3s))
        << "in flight: " << in_flight();
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("relay_callers_cut_off_total{why=\"body_rate\"} 2"), std::string::npos)
        << metrics;
    // Caller-side: not the origin's failure.
    EXPECT_EQ(breaker(), "closed");
    ::close(stalled);
    ::close(trickle);

    // A caller that reads at full speed gets all of a big response.
    const int fast = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fast, 0);
    ASSERT_TRUE(send_text(fast,
                          "GET /t/acme/big/big?size=67108864 HTTP/1.1\r\nHost: relay.test\r\n"
                          "Connection: close\r\n\r\n"));
    std::size_t received = 0;
    std::string head;
    std::vector<char> buf(1 << 20);
    const auto deadline = steady::now() + 30s;
    while (steady::now() < deadline) {
        pollfd p{fast, POLLIN, 0};
        if (::poll(&p, 1, 1000) <= 0) continue;
        ssize_t n = ::recv(fast, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        if (head.size() < 200) head.append(buf.data(), std::min<std::size_t>(n, 200));
        received += static_cast<std::size_t>(n);
    }
    ::close(fast);
    EXPECT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u) << head;
    EXPECT_GT(received, 67108864u);  // the head and every body byte
    EXPECT_EQ(origin->bigs_completed(), 1);
}

TEST_F(RelaySlowCaller, TheWriteDeadlineAloneCutsOffAStalledReader) {
    start("  min_body_rate: 0\n  write_timeout: 2s\n");
    const int stalled = small_reader(relay->public_port());
    ASSERT_GE(stalled, 0);
    ASSERT_TRUE(send_text(
        stalled, "GET /t/acme/big/big?size=1073741824 HTTP/1.1\r\nHost: relay.test\r\n\r\n"));
    const auto t0 = steady::now();
    EXPECT_TRUE(streaming_origin::wait_until([&] { return origin->bigs_aborted() == 1; }, 10s))
        << relay->log();
    EXPECT_LT(steady::now() - t0, 8s);
    EXPECT_TRUE(streaming_origin::wait_until([&] { return in_flight() == 0; }, 3s));
    EXPECT_NE(
        relay->admin_get("/metrics").find("relay_callers_cut_off_total{why=\"write_timeout\"}"),
        std::string::npos);
    ::close(stalled);
}

TEST_F(RelaySlowCaller, ABodySentAByteAtATimeIsAnswered408AndIsNotTheOriginsFault) {
    // The idle timer alone (5 s) would never fire: a byte comes every 250 ms.
    start("  idle_timeout: 5s\n  min_body_rate: 1024\n  min_body_rate_grace: 2s\n");
    constexpr int senders = 6;  // more than breaker.failures (5)
    std::vector<int> fds;
    for (int i = 0; i < senders; ++i) {
        fds.push_back(connect_tcp("127.0.0.1", relay->public_port()));
        ASSERT_GE(fds.back(), 0);
        ASSERT_TRUE(send_text(fds.back(),
                              "POST /t/acme/big/echo HTTP/1.1\r\nHost: relay.test\r\n"
                              "Content-Length: 100000\r\n\r\n"));
    }
    std::vector<std::string> answers(senders);
    std::vector<bool> closed(senders, false);
    std::vector<steady::duration> cut(senders);
    const auto t0 = steady::now();
    while (steady::now() - t0 < 15s) {
        int open = 0;
        for (int i = 0; i < senders; ++i) {
            if (closed[i]) continue;
            bool eof = false;
            answers[i] += read_now(fds[i], eof);
            if (eof) {
                closed[i] = true;
                cut[i] = steady::now() - t0;
                continue;
            }
            ++open;
            (void)::send(fds[i], "z", 1, MSG_NOSIGNAL);
        }
        if (open == 0) break;
        std::this_thread::sleep_for(250ms);
    }
    for (int i = 0; i < senders; ++i) {
        EXPECT_TRUE(closed[i]) << i;
        EXPECT_NE(answers[i].find("HTTP/1.1 408 "), std::string::npos) << answers[i];
        EXPECT_NE(answers[i].find("body_timeout"), std::string::npos) << answers[i];
        EXPECT_LT(cut[i], 5s) << i;  // grace + a little, well before idle_timeout
        ::close(fds[i]);
    }
    EXPECT_TRUE(streaming_origin::wait_until([&] { return in_flight() == 0; }, 3s));
    // Six caller failures did not open the tunnel's breaker.
    EXPECT_EQ(breaker(), "closed");
    auto r = http_request(relay->public_port(),
                          "POST /t/acme/big/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          "Connection: close\r\n\r\nhello");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello");
}

}  // namespace
}  // namespace tunnel::test
