// The answers the relay writes to its public callers (declared in
// public_connection.hpp): JSON error responses, and writes with a deadline
// and a minimum rate.
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/http_reason.hpp"
#include "relay/admission.hpp"
#include "relay/public_connection.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

}  // namespace

std::string_view reason_phrase(int status) {
    return core::http_reason(status);
}

std::string error_response(int status, std::string_view code, std::string_view message,
                           std::optional<long long> retry_after) {
    nlohmann::json j;
    j["error"] = code;
    j["message"] = message;
    std::string body = j.dump();
    body += '\n';
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                    status, reason_phrase(status), body.size());
    if (retry_after) out += fmt::format("Retry-After: {}\r\n", *retry_after);
    out += "Connection: close\r\nCache-Control: no-store\r\n\r\n";
    out += body;
    return out;
}

asio::awaitable<write_outcome> write_caller(public_conn& conn, std::string_view data,
                                            body_rate* rate) {
    auto ex = co_await asio::this_coro::executor;
    std::size_t sent = 0;
    if (!conn.closed && !(rate && rate->exhausted()) && !data.empty()) {
        // What the socket takes at once needs no deadline; the caller made
        // the relay wait no time for it.
        error_code ec;
        sent = conn.stream->try_write(asio::buffer(data.data(), data.size()), ec);
        if (ec) co_return write_outcome::failed;
        if (rate && sent > 0) rate->record(steady::duration::zero(), sent);
    }
    while (sent < data.size()) {
        if (conn.closed) co_return write_outcome::failed;
        // The deadline of this write: no progress within write_timeout, or
        // the caller's rate credit running out, whichever comes first.
        steady::duration budget = conn.write_timeout;
        const bool by_rate = rate && rate->enabled() && rate->budget() < budget;
        if (by_rate) budget = rate->budget();
        if (budget <= steady::duration::zero()) co_return write_outcome::too_slow;
        asio::steady_timer timer(ex);
        timer.expires_after(budget);
        auto armed = std::make_shared<bool>(true);
        auto fired = std::make_shared<bool>(false);
        timer.async_wait([stream = conn.stream, armed, fired](error_code e) {
            if (e || !*armed) return;
            *fired = true;
            stream->cancel();
        });
        const auto start = steady::now();
        error_code ec;
        auto buf = asio::buffer(data.data() + sent, data.size() - sent);
        const std::size_t n = co_await conn.stream->write_some(buf, ec);
        *armed = false;
        timer.cancel();
        if (rate) rate->record(steady::now() - start, n);
        sent += n;
        if (*fired) co_return by_rate ? write_outcome::too_slow : write_outcome::write_timeout;
        if (ec) co_return write_outcome::failed;
    }
    co_return write_outcome::done;
}

asio::awaitable<void> send(public_conn& conn, std::string text) {
    const std::string_view view = text;
    (void)co_await write_caller(conn, view);
}

asio::awaitable<void> send_error(public_conn& conn, int status, std::string_view code,
                                 std::string message, std::optional<long long> retry_after) {
    std::string text = error_response(status, code, message, retry_after);
    conn.last_status = status;
    co_await send(conn, std::move(text));
    conn.close();
}

asio::awaitable<void> send_refusal(relay_state& relay, public_conn& conn,
                                   const admission& refused) {
    count_refusal(relay, refused);
    co_await send_error(conn, refused.status, refused.code, refused.message, refused.retry_after);
}

}  // namespace tunnel::relay
