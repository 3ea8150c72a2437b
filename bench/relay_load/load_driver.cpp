#include "load_driver.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <vector>

#include <fmt/format.h>

#include "core/asio.hpp"
#include "core/spawn.hpp"
#include "load_origin.hpp"

namespace tunnel::bench {

namespace {

using asio::ip::tcp;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

struct due_request {
    int name = 0;
    clock::time_point due;
};

struct load_state {
    explicit load_state(const load_options& opts) : o(opts) {}
    const load_options& o;
    std::deque<due_request> pending;
    std::vector<asio::steady_timer*> idle;  // workers waiting for a request
    bool all_issued = false;
    std::vector<double> latencies_ms;
    load_result r;
    clock::time_point first_due{}, last_done{};

    void wake_one() {
        if (idle.empty()) return;
        idle.back()->cancel();
        idle.pop_back();
    }
    void wake_all() {
        for (auto* t : idle) t->cancel();
        idle.clear();
    }
    void fail(long long load_result::*counter, const std::string& what) {
        ++(r.*counter);
        if (r.first_error.empty()) r.first_error = what;
    }
};

// The answer's status, and its body once Content-Length bytes are in; 0
// while incomplete, -1 when malformed.
int parse_answer(const std::string& buf, std::size_t& used, std::string& body) {
    const auto end = buf.find("\r\n\r\n");
    if (end == std::string::npos) return buf.size() > 64 * 1024 ? -1 : 0;
    if (buf.compare(0, 9, "HTTP/1.1 ") != 0 || buf.size() < 12) return -1;
    const int status = std::atoi(buf.c_str() + 9);
    std::string head = buf.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const auto cl = head.find("\r\ncontent-length:");
    if (cl == std::string::npos) return -1;  // the origin always sends one
    const auto length = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
    if (length > 1024 * 1024) return -1;
    if (buf.size() < end + 4 + length) return 0;
    body = buf.substr(end + 4, length);
    used = end + 4 + length;
    return status;
}

asio::awaitable<void> producer(load_state& st) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer tick(ex);
    const auto total = static_cast<long long>(st.o.rate * st.o.duration.count() / 1000.0);
    const auto start = clock::now();
    st.first_due = start;
    long long issued = 0;
    while (issued < total) {
        const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
        const auto due_now = std::min(total, static_cast<long long>(elapsed * st.o.rate) + 1);
        for (; issued < due_now; ++issued) {
            const auto due =
                start + std::chrono::nanoseconds(static_cast<long long>(issued * 1e9 / st.o.rate));
            st.pending.push_back({static_cast<int>(issued % st.o.names), due});
            st.wake_one();
        }
        tick.expires_after(std::chrono::milliseconds(1));
        error_code ec;
        co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    st.r.sent = issued;
    st.all_issued = true;
    st.wake_all();
}

asio::awaitable<void> worker(load_state& st) {
    auto ex = co_await asio::this_coro::executor;
    tcp::socket sock(ex);
    asio::steady_timer wait(ex), deadline(ex);
    std::string buf;
    char chunk[4096];
    const tcp::endpoint relay(asio::ip::address_v4::loopback(), st.o.port);
    // What the deadline's handler may touch: it can run after this frame is
    // gone (queued just before a cancel), so it checks `alive` and the
    // request's number first.
    struct watchdog {
        tcp::socket* sock = nullptr;
        bool alive = true;
        bool timed_out = false;
        std::uint64_t request = 0;
    };
    auto dog = std::make_shared<watchdog>();
    dog->sock = &sock;
    for (;;) {
        if (st.pending.empty()) {
            if (st.all_issued) break;
            wait.expires_at(clock::time_point::max());
            st.idle.push_back(&wait);
            error_code ec;
            co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        const auto req = st.pending.front();
        st.pending.pop_front();
        dog->timed_out = false;
        deadline.expires_at(req.due + st.o.timeout);
        deadline.async_wait([dog, number = ++dog->request](error_code ec) {
            if (ec || !dog->alive || number != dog->request) return;
            dog->timed_out = true;
            dog->sock->close(ec);
        });
        error_code ec;
        std::string what;
        if (!sock.is_open()) {
            buf.clear();
            co_await sock.async_connect(relay, asio::redirect_error(asio::use_awaitable, ec));
            if (!ec) sock.set_option(tcp::no_delay(true), ec);
            if (ec) what = "connect: " + ec.message();
        }
        const auto name = fmt::format("n{}", req.name);
        if (!ec) {
            const auto text = fmt::format("GET /t/{}/{}/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                                          st.o.tenant, name, st.o.port);
            co_await asio::async_write(sock, asio::buffer(text),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) what = "write: " + ec.message();
        }
        int status = 0;
        std::string body;
        while (!ec) {
            std::size_t used = 0;
            status = parse_answer(buf, used, body);
            if (status < 0) {
                what = "a malformed answer: " + buf.substr(0, 200);
                ec = asio::error::invalid_argument;
                break;
            }
            if (status > 0) {
                buf.erase(0, used);
                break;
            }
            const auto n = co_await sock.async_read_some(
                asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) what = "read: " + ec.message();
            buf.append(chunk, ec ? 0 : n);
        }
        deadline.cancel();
        const bool timed_out = dog->timed_out;
        const auto done = clock::now();
        st.last_done = std::max(st.last_done, done);
        if (timed_out) {
            st.fail(&load_result::timeouts,
                    fmt::format("{}: no answer within {} ms", name, st.o.timeout.count()));
        } else if (ec) {
            st.fail(&load_result::socket_errors, fmt::format("{}: {}", name, what));
        } else if (status != 200) {
            st.fail(&load_result::status_errors,
                    fmt::format("{}: status {}: {}", name, status, body.substr(0, 200)));
        } else if (body != fmt::format("tunnel {}\n", tunnel_address(req.name))) {
            st.fail(&load_result::wrong_tunnel,
                    fmt::format("{}: answered by '{}'", name, body.substr(0, 100)));
        } else {
            ++st.r.ok;
            st.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(done - req.due).count());
        }
        if (ec || timed_out || status != 200) sock.close(ec);
    }
    dog->alive = false;
    error_code ignored;
    sock.close(ignored);
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    const auto at = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size()))) - 1;
    return sorted[std::min(at, sorted.size() - 1)];
}

}  // namespace

load_result run_load(const load_options& o) {
    asio::io_context io(1);
    load_state st(o);
    st.latencies_ms.reserve(static_cast<std::size_t>(o.rate * o.duration.count() / 1000.0) + 16);
    core::spawn(io, producer(st), "relay_load producer");
    for (int i = 0; i < o.connections; ++i) core::spawn(io, worker(st), "relay_load worker");
    io.run();
    auto& v = st.latencies_ms;
    std::sort(v.begin(), v.end());
    st.r.p50_ms = percentile(v, 0.50);
    st.r.p99_ms = percentile(v, 0.99);
    st.r.p999_ms = percentile(v, 0.999);
    st.r.max_ms = v.empty() ? 0 : v.back();
    st.r.seconds = std::chrono::duration<double>(st.last_done - st.first_due).count();
    return st.r;
}

}  // namespace tunnel::bench
