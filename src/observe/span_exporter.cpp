#include "observe/span_exporter.hpp"

#include <pthread.h>

#include <cctype>
#include <charconv>
#include <new>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/beast.hpp"
#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "observe/log.hpp"
#include "observe/otlp_json.hpp"

namespace tunnel::observe {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
namespace http = beast::http;

// One POST of `body` to the collector; `why` says what went wrong ("" when
// it took the batch: any 2xx).
asio::awaitable<void> post_batch(const otlp_endpoint& ep, const std::string& body,
                                 std::chrono::milliseconds timeout, std::string& why) {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(ex);
    beast::tcp_stream stream(ex);
    error_code ec;
    why.clear();
    const std::string port = std::to_string(ep.port);  // a named local (g++ 12 and co_await)
    const auto results = co_await resolver.async_resolve(
        ep.host, port, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        why = fmt::format("cannot resolve {}: {}", ep.host, ec.message());
        co_return;
    }
    stream.expires_after(timeout);
    co_await stream.async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        why = fmt::format("cannot connect: {}", ec.message());
        co_return;
    }
    http::request<http::string_body> req{http::verb::post, ep.target, 11};
    req.set(http::field::host, fmt::format("{}:{}", ep.host, ep.port));
    req.set(http::field::content_type, "application/json");
    req.set(http::field::user_agent, "tunnel");
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        why = fmt::format("cannot send: {}", ec.message());
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        why = fmt::format("no answer: {}", ec.message());
        co_return;
    }
    const unsigned status = parser.get().result_int();
    if (status < 200 || status > 299)
        why = fmt::format("HTTP {}: {}", status, core::log_text(parser.get().body(), 200));
    error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
}

// post_batch, then `done`: the caller tells a finished POST from one its
// deadline cut short.
asio::awaitable<void> post_and_mark(const otlp_endpoint& ep, const std::string& body,
                                    std::chrono::milliseconds timeout, std::string& why,
                                    bool& done) {
    co_await post_batch(ep, body, timeout, why);
    done = true;
}

}  // namespace

std::string otlp_endpoint::to_string() const {
    return fmt::format("http://{}:{}{}", host, port, target);
}

core::result<otlp_endpoint> parse_otlp_endpoint(std::string_view url) {
    auto bad = [&](std::string_view why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\" {}: use http://HOST[:PORT][/PATH], e.g. "
                                      "http://127.0.0.1:4318/v1/traces",
                                      core::log_text(url, 200), why));
    };
    constexpr std::string_view scheme = "http://";
    if (url.rfind("https://", 0) == 0)
        return bad(
            "is https: only http:// is supported (run a collector or agent next to the "
            "relay; it can forward over TLS)");
    if (url.rfind(scheme, 0) != 0) return bad("is not an http:// URL");
    if (url.size() > 2048) return bad("is too long");
    std::string_view rest = url.substr(scheme.size());
    otlp_endpoint ep;
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos && slash + 1 < rest.size())
        ep.target = std::string(rest.substr(slash));
    if (authority.find('@') != std::string_view::npos)
        return bad("has user info (credentials do not belong in a config file's URL)");
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return bad("has an unclosed [");
        ep.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return bad("has junk after ]");
            port_text = authority.substr(close + 2);
        }
    } else {
        const auto colon = authority.find(':');
        ep.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (ep.host.empty()) return bad("has no host");
    for (char c : ep.host)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':'))
            return bad("has a host that is not a name or an address");
    if (!port_text.empty() || authority.back() == ':') {
        unsigned port = 0;
        const auto [p, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc{} || p != port_text.data() + port_text.size() || port == 0 ||
            port > 65535)
            return bad("has a port that is not 1-65535");
        ep.port = static_cast<std::uint16_t>(port);
    }
    for (char c : ep.target)
        if (c <= 0x20 || c >= 0x7f) return bad("has a path with spaces or control characters");
    return ep;
}

span_exporter::span_exporter(span_exporter_options options)
    : options_(std::move(options)), thread_([this] { run(); }) {}

span_exporter::~span_exporter() {
    stop();
}

void span_exporter::record(std::vector<span_record>&& spans) noexcept {
    if (spans.empty()) return;
    std::size_t dropped = 0;
    bool full_batch = false;
    {
        std::lock_guard lock(mutex_);
        for (auto& s : spans) {
            bool queued = false;
            if (!stopping_ && queue_.size() < options_.max_queue) {
                try {
                    queue_.push_back(std::move(s));
                    queued = true;
                } catch (const std::bad_alloc&) {  // dropped, never thrown at a worker
                }
            }
            if (!queued) ++dropped;
        }
        dropped_ += dropped;
        full_batch = queue_.size() >= options_.max_batch;
    }
    if (dropped) count("dropped", dropped);
    if (full_batch) wake_.notify_one();
}

void span_exporter::stop() {
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            stopping_ = true;
            stop_deadline_ = steady::now() + options_.flush_timeout;
        }
    }
    wake_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::uint64_t span_exporter::exported() const noexcept {
    std::lock_guard lock(mutex_);
    return exported_;
}

std::uint64_t span_exporter::dropped() const noexcept {
    std::lock_guard lock(mutex_);
    return dropped_;
}

std::uint64_t span_exporter::failed() const noexcept {
    std::lock_guard lock(mutex_);
    return failed_;
}

void span_exporter::count(const char* outcome, std::size_t n) noexcept {
    if (!options_.spans || n == 0) return;
    try {
        options_.spans->with({outcome}).inc(static_cast<double>(n));
    } catch (...) {
    }
}

void span_exporter::run() {
    ::pthread_setname_np(::pthread_self(), "span-export");
    std::unique_lock lock(mutex_);
    auto next = steady::now() + options_.interval;
    for (;;) {
        wake_.wait_until(lock, next,
                         [&] { return stopping_ || queue_.size() >= options_.max_batch; });
        const auto now = steady::now();
        if (queue_.empty()) {
            if (stopping_) return;
            next = now + options_.interval;
            continue;
        }
        if (!stopping_ && queue_.size() < options_.max_batch && now < next) continue;
        if (stopping_ && now >= stop_deadline_) {
            // Out of time: what is left is dropped, and said so.
            const auto left = queue_.size();
            queue_.clear();
            dropped_ += left;
            lock.unlock();
            count("dropped", left);
            spdlog::warn("tracing: {} spans not exported: the shutdown flush ran out of time",
                         left);
            return;
        }
        std::vector<span_record> batch;
        const auto n = std::min(queue_.size(), options_.max_batch);
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        const auto deadline = stopping_ ? stop_deadline_ : now + options_.post_timeout;
        lock.unlock();
        send(batch, deadline);
        lock.lock();
        if (queue_.size() < options_.max_batch) next = steady::now() + options_.interval;
    }
}

void span_exporter::send(std::vector<span_record>& batch, steady::time_point deadline) {
    if (options_.log_spans)
        for (const auto& s : batch) log_info_json("span", "span", span_log_json(s));
    if (!options_.otlp) {  // logged only: that is their export
        {
            std::lock_guard lock(mutex_);
            exported_ += batch.size();
        }
        count("exported", batch.size());
        return;
    }
    const auto budget = std::min<steady::duration>(
        options_.post_timeout,
        std::max<steady::duration>(deadline - steady::now(), std::chrono::milliseconds(100)));
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(budget);
    const std::string body = otlp_traces_json(batch, options_.service_name);
    std::string why = "timed out";
    {
        asio::io_context io;
        bool done = false;
        core::spawn(io, post_and_mark(*options_.otlp, body, timeout, why, done), "otlp export");
        io.run_for(timeout + std::chrono::milliseconds(500));
        if (!done) why = "timed out";
    }
    const bool ok = why.empty();
    bool warn = false;
    {
        std::lock_guard lock(mutex_);
        (ok ? exported_ : failed_) += batch.size();
        if (!ok && steady::now() - last_warning_ >= std::chrono::minutes(1)) {
            last_warning_ = steady::now();
            warn = true;
        }
    }
    count(ok ? "exported" : "failed", batch.size());
    if (warn)
        spdlog::warn(
            "tracing: export to {} failed ({}): {} spans dropped (further failures are "
            "counted in the metrics, logged once a minute)",
            options_.otlp->to_string(), why, batch.size());
}

}  // namespace tunnel::observe
