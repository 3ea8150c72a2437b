#include "relay/hop_exchange.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/ascii.hpp"
#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/hop_pool.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t hop_read_chunk = 64 * 1024;

// While B waits for the first bytes of an answer, the hop socket's receive
// low-water mark is one byte more than the owner's started line: the owner
// writes that line as the request enters its tunnel and the response comes
// some time later, and without the mark B woke for the line alone (one
// wake-up, one read and one failed speculative read per request, ~1/3 of
// B's system calls on a keep-alive hop). With it, B wakes once, when the
// response's first bytes are there too, or for the not-attached line (longer
// than the mark), an owner's own refusal (an error response, longer), EOF or
// an error (which wake regardless). After the first read the mark goes back
// to 1 byte for the rest of the response (a chunked body's last 5 bytes must
// wake B), and a socket goes back to the pool with the mark set again.
// (A relay of a version before TUNNEL-HOP/2 sends no started line; an answer
// of theirs shorter than the mark on a kept connection would wait for the
// owner's idle close: relays of this version answer with longer heads.)
constexpr int first_read_lowat = static_cast<int>(hop_started_line.size()) + 1;

void set_lowat(tcp::socket& sock, int bytes) {
    error_code ignored;
    sock.set_option(asio::socket_base::receive_low_watermark(bytes), ignored);
}

// The sending relay's end of one hop connection while it carries a request:
// closed by either side's failure (or by a shutdown, through
// relay_state::owned); else it may go back to the pool.
struct hop_link {
    hop_link(tcp::socket s, const asio::any_io_executor& ex) : sock(std::move(s)), up_signal(ex) {}
    tcp::socket sock;
    bool closed = false;
    bool body_sent = false;      // the whole request body went (as its framing delimits it)
    bool raw = false;            // after a 101: every caller byte goes, raw
    bool response_over = false;  // the response ended: pump_up stops
    bool caller_gone = false;    // the caller hung up before the response ended
    bool bad_body = false;       // the request body broke its framing or limits
    bool fed = false;            // pump_up took bytes of the request body from the caller
    bool up_done = false;
    bool lowat_set = true;        // the socket's mark is first_read_lowat (not 1)
    std::uint64_t up_bytes = 0;   // caller bytes pump_up sent after the request's head
    core::wake_signal up_signal;  // pump_up ended

    void close() {
        if (closed) return;
        closed = true;
        error_code ignored;
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
};

// Caller -> owner. First the request body, as `request` delimits it (the
// bytes after it are the caller's next request: not this hop's); then it
// watches the caller, and one that hangs up before the response ended
// closes the hop (the owner cancels the stream upstream, as for its own
// callers). After a 101 every caller byte goes through raw, and the caller's
// EOF is passed on as EOF.
asio::awaitable<void> pump_up(std::shared_ptr<public_conn> conn, std::shared_ptr<hop_link> link,
                              std::shared_ptr<http_tracker> request) {
    while (!link->closed && !link->response_over) {
        std::size_t n = 0;
        if (link->raw) {
            n = conn->buffered().size();
        } else if (!link->body_sent && !conn->buffered().empty()) {
            n = request->feed(conn->buffered());
            link->fed = link->fed || n > 0;
            if (request->problem() != http_problem::none) {
                link->bad_body = true;  // the owner would refuse it too: answered here
                link->close();
                break;
            }
        }
        if (n == 0) {
            if (conn->in_eof || conn->closed) {
                error_code ignored;
                if (link->raw && !link->closed) {
                    link->sock.shutdown(tcp::socket::shutdown_send, ignored);
                } else {
                    link->caller_gone = true;
                    link->close();
                }
                break;
            }
            (void)co_await conn->data_signal.wait(steady::time_point::max());
            continue;
        }
        // A copy: the reader may grow (and move) conn's buffer during the write.
        const std::string chunk(conn->buffered().substr(0, n));
        error_code ec;
        co_await asio::async_write(link->sock, asio::buffer(chunk),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            link->close();
            break;
        }
        conn->consume(n);
        link->up_bytes += n;
        if (!link->raw && request->done()) link->body_sent = true;
    }
    link->up_done = true;
    link->up_signal.notify();
}

// Stops pump_up and waits until it returned (it holds the caller's data
// signal while it runs).
asio::awaitable<void> stop_pump(public_conn& conn, hop_link& link) {
    link.response_over = true;
    conn.data_signal.notify();
    while (!link.up_done)
        (void)co_await link.up_signal.wait(steady::now() + std::chrono::seconds(5));
}

// What came back over one hop connection.
struct hop_answer {
    bool started = false;       // the owner announced the request started (hop_started_line)
    bool not_attached = false;  // the owner said the route is not its (hop_not_attached_line)
    std::uint64_t bytes = 0;    // of the response from the owner
    std::uint64_t written = 0;  // to the caller
    bool complete = false;      // the whole final response reached the caller
    bool reusable = false;      // and the hop connection went back to the pool
    bool keep = false;          // and the caller's connection stays open
    bool failed = false;        // the caller is gone, or the owner broke HTTP
    bool broken = false;        // the owner broke HTTP
};

// Owner -> caller: the response, forwarded as it comes (each read is
// written before the next), watching its framing; the caller is told the
// connection closes when it will (its own "Connection: close", or a
// draining relay). After a 101 to a request that asked for it, raw both
// ways until either side ends. A response that ends cleanly and keeps the
// connection open after the whole request went: `release` is called (the
// connection goes back to the pool) before its last bytes are written.
asio::awaitable<hop_answer> pump_down(relay_state& relay, public_conn& conn, hop_link& link,
                                      const http_head& head, const std::function<void()>& release) {
    hop_answer out;
    auto response = http_tracker::for_response(head.method == "HEAD");
    const bool caller_keep = head.keep_alive && !relay.stopping;
    bool final_head = false;  // the final (not 1xx) head was read
    bool hop_keep = false;    // and it keeps the hop connection open
    std::string in;           // owner bytes not parsed yet
    bool begun = false;       // a byte of the response was parsed
    const auto buf = std::make_unique_for_overwrite<char[]>(hop_read_chunk);  // not zeroed
    for (bool first_read = true;; first_read = false) {
        if (link.lowat_set && !first_read && !link.closed) {
            // Not the first read: the rest of the answer needs the usual mark.
            // (A first read returns what is there: a speculative one may
            // return the started line alone.)
            set_lowat(link.sock, 1);
            link.lowat_set = false;
        }
        error_code ec;
        const std::size_t n = co_await link.sock.async_read_some(
            asio::buffer(buf.get(), hop_read_chunk), asio::redirect_error(asio::use_awaitable, ec));
        out.bytes += n;
        std::string text;
        if (link.raw) {
            text.assign(buf.get(), n);
        } else {
            in.append(buf.get(), n);
            // The owner's announcement comes before the response, once.
            if (!begun && !out.started && !in.empty()) {
                const auto lead = read_hop_lead(in);
                if (lead.kind == hop_lead::not_attached) {
                    out.bytes = 0;  // its 503 is not passed on (hop_to_owner)
                    out.not_attached = true;
                    co_return out;
                }
                if (lead.kind == hop_lead::started) {
                    in.erase(0, lead.size);
                    out.bytes -= lead.size;
                    out.started = true;
                } else if (lead.kind == hop_lead::incomplete) {
                    // A part of one: the rest follows.
                    if (!ec && !link.closed) continue;
                    out.bytes -= in.size();
                    break;
                }
            }
            begun = begun || !in.empty();
            while (!in.empty() && !response.done()) {
                const std::size_t taken = response.feed(in);
                if (response.problem() != http_problem::none) {
                    out.failed = out.broken = true;
                    co_return out;
                }
                if (taken == 0) break;  // more bytes needed
                std::string piece = in.substr(0, taken);
                in.erase(0, taken);
                if (!final_head && response.header_done() && !response.interim()) {
                    final_head = true;
                    const auto& h = response.head();
                    conn.last_status = h.status;
                    if (h.status == 101 && head.upgrade) {
                        link.raw = true;  // pump_up goes raw
                        conn.upgraded = true;
                        conn.data_signal.notify();
                        piece += in;
                        in.clear();
                    } else {
                        hop_keep = h.keep_alive;
                        out.keep = h.keep_alive && caller_keep;
                        // The head ends here with its blank line.
                        if (h.keep_alive && !caller_keep && piece.ends_with("\r\n"))
                            piece.insert(piece.size() - 2, "Connection: close\r\n");
                    }
                }
                text += piece;
                if (link.raw) break;
            }
        }
        if (!link.raw && response.done()) {
            out.complete = true;
            // Bytes after the response: the owner broke the protocol.
            out.reusable = hop_keep && in.empty() && link.body_sent && !link.closed;
            // Back to the pool before the caller has the end of the answer:
            // the caller's next connection may come at once, and finds it.
            if (out.reusable) {
                link.response_over = true;  // pump_up stops without touching it
                conn.data_signal.notify();
                release();
            }
        }
        if (!text.empty()) {
            const auto wrote = co_await write_caller(conn, text);
            if (wrote != write_outcome::done) {
                out.failed = true;
                co_return out;
            }
            out.written += text.size();
        }
        if (out.complete) co_return out;
        if (ec || link.closed) break;
    }
    if (!link.raw && final_head) {
        response.feed_eof();  // a body delimited by the connection's end
        out.complete = response.done();
    }
    out.keep = false;
    co_return out;
}

}  // namespace

std::string head_for_pooled_hop(const http_head& head) {
    if (head.version == 10) return head_for_hop(head);  // HTTP/1.0 keeps its own rules
    http_head copy = head;
    std::erase_if(copy.fields, [](http_field& f) {
        if (!core::iequals(f.name, "Connection")) return false;
        std::string kept;
        std::string_view rest = f.value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            std::string_view token = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
                token.remove_prefix(1);
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
                token.remove_suffix(1);
            if (token.empty() || core::iequals(token, "close")) continue;
            if (!kept.empty()) kept += ", ";
            kept += token;
        }
        f.value = std::move(kept);
        return f.value.empty();
    });
    return head_for_hop(copy);
}

asio::awaitable<hop_result> hop_to_owner(std::shared_ptr<relay_state> relay,
                                         std::shared_ptr<public_conn> conn, http_tracker& request,
                                         const http_head& head, public_route route,
                                         cluster_routes::remote_owner owner) {
    const auto ex = co_await asio::this_coro::executor;
    const std::string label = fmt::format("{}/{}", route.tenant, route.name);
    auto& pool = hop_pool_of(*relay, conn->worker);
    // A request the owner never got to answer waits again for the name's
    // tunnel when a lease holds the name (call after marking the owner
    // unreachable: then the lease's name is `awaited`). True, and counted,
    // when it goes back to wait: the caller then returns hop_result::requeue.
    auto requeue = [&] {
        if (conn->hop_requeues >= max_hop_requeues || relay->stopping ||
            relay->config.queue.max_requests == 0 ||
            !relay->cluster->awaited(route.tenant, route.name))
            return false;
        ++conn->hop_requeues;
        relay->metrics.hops.with({"requeued"}).inc();
        return true;
    };
    auto unreachable = [&](const std::string& why) {
        relay->metrics.hops.with({"failed"}).inc();
        spdlog::warn("{}: the relay holding it ({}) {}", label, owner.node, why);
        relay->cluster->unreachable(owner.node);
    };
    auto answer_unreachable = [&](std::string_view what) -> asio::awaitable<void> {
        co_await send_error(*conn, 502, "owner_unreachable",
                            fmt::format("{} is served by relay {}, which {}; retry in a few "
                                        "seconds",
                                        label, owner.node, what),
                            hop_retry_after);
    };
    const std::string text = head_for_pooled_hop(head);
    auto body = std::make_shared<http_tracker>(std::move(request));
    // The tracker goes back to the caller's request (a requeued request
    // waits with it) however this ends.
    struct give_back {
        http_tracker& to;
        std::shared_ptr<http_tracker>& from;
        ~give_back() { to = std::move(*from); }
    } restore{request, body};

    for (int attempt = 0;; ++attempt) {
        // 1. A connection: a pooled one, else a new one.
        std::optional<tcp::socket> sock;
        if (attempt == 0) sock = pool.take(owner.address, steady::now());
        const bool reused = sock.has_value();
        if (!sock) {
            auto connected = co_await connect_hop(ex, owner.address);
            if (!connected) {
                unreachable("is unreachable: " + connected.error().message);
                // Its lease holds the name: the tunnel will attach again (here
                // or to another relay); the request waits for it in the queue.
                if (requeue()) co_return hop_result::requeue;
                co_await answer_unreachable("cannot be reached right now");
                co_return hop_result::done;
            }
            sock.emplace(std::move(*connected));
            set_lowat(*sock, first_read_lowat);  // pooled ones have it (release)
        }
        auto link = std::make_shared<hop_link>(std::move(*sock), ex);
        auto owned = relay->own(conn->worker, "cluster hop", [weak = std::weak_ptr(link)] {
            if (auto l = weak.lock()) l->close();
        });

        // 2. The preamble and the head as parsed; the body follows (pump_up).
        auto line = sign_hop(*relay, route.tenant, route.name, conn->peer_ip, conn->secure());
        if (!line) {
            link->close();
            spdlog::error("{}: cannot sign the hop to relay {}: {}", label, owner.node,
                          line.error().message);
            co_await answer_unreachable("cannot be reached from here");
            co_return hop_result::done;
        }
        const std::string out = *line + text;
        error_code ec;
        co_await asio::async_write(link->sock, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            // The head did not go whole: the owner cannot have started it.
            link->close();
            if (reused && attempt == 0) {
                relay->metrics.hops.with({"retried"}).inc();
                continue;  // an idle connection the owner closed: a new one
            }
            unreachable(
                fmt::format("is unreachable: sending to {}: {}", owner.address, ec.message()));
            if (requeue()) co_return hop_result::requeue;
            co_await answer_unreachable("cannot be reached right now");
            co_return hop_result::done;
        }
        relay->metrics.hops.with({reused ? "reused" : "sent"}).inc();
        // The request has started: the next one waiting for the name may go.
        conn->turn.reset();
        link->body_sent = body->done();

        // 3. The body up and the response down, until the response ends. Not
        // counted in relay->in_flight (a drain closes hop connections with
        // the rest of the connections, after waiting for the tunnels' own).
        // A request that went whole with its head (no body to send, no
        // upgrade) needs no pump: the reader says when the caller hangs up.
        // (A coroutine, two signals and a timer per request on a keep-alive
        // hop: ~8% of B's instructions.)
        const bool pump = !link->body_sent || head.upgrade;
        struct watch {
            public_conn& conn;
            ~watch() { conn.on_hangup = nullptr; }
        } unwatch{*conn};
        if (pump) {
            core::spawn(ex, pump_up(conn, link, body), "cluster hop pump (caller to owner)");
        } else if (conn->in_eof || conn->closed) {
            link->caller_gone = true;  // as pump_up would: the owner need not answer
            link->close();
        } else {
            conn->on_hangup = [l = link.get()] {
                if (l->closed) return;  // done, or back in the pool
                l->caller_gone = true;
                l->close();
            };
        }
        const std::function<void()> release = [&] {
            if (relay->stopping) return;
            owned.reset();
            if (!link->lowat_set) set_lowat(link->sock, first_read_lowat);
            pool.put(owner.address, std::move(link->sock), steady::now());
            link->closed = true;  // not this exchange's any more
        };
        const auto answer = co_await pump_down(*relay, *conn, *link, head, release);
        conn->on_hangup = nullptr;
        if (pump) co_await stop_pump(*conn, *link);
        if (link->bad_body && answer.written == 0 && !conn->closed) {
            const auto refused =
                check_head(body->problem(), body->problem_detail(), relay->live()->config.limits);
            co_await send_refusal(*relay, *conn, refused);
            co_return hop_result::done;
        }
        if (answer.broken && answer.written == 0 && !conn->closed) {
            link->close();
            relay->metrics.hops.with({"failed"}).inc();
            spdlog::warn("{}: the relay holding it ({}) sent a malformed response", label,
                         owner.node);
            co_await send_error(*conn, 502, "bad_gateway",
                                fmt::format("{} is served by relay {}, whose answer was "
                                            "malformed",
                                            label, owner.node));
            co_return hop_result::done;
        }
        if (link->caller_gone || link->bad_body) {
            link->close();
            conn->close();
            co_return hop_result::done;
        }
        if (answer.not_attached) {
            // B's mirror was stale: the name is not (any more) that relay's.
            // The request never started; with a lease it waits for the
            // name's tunnel, wherever it attaches.
            link->close();
            relay->metrics.hops.with({"stale"}).inc();
            relay->cluster->stale(route.tenant, route.name, owner.node);
            if (!link->fed && !conn->in_eof && requeue()) co_return hop_result::requeue;
            co_await send_error(*conn, 503, "tunnel_offline",
                                fmt::format("{} is not attached to relay {} any more; retry in "
                                            "a moment",
                                            label, owner.node),
                                1);
            co_return hop_result::done;
        }
        if (answer.bytes == 0 && !conn->closed && !answer.failed) {
            link->close();
            if (answer.started) {
                // It died (or dropped the hop) after the request went into
                // its tunnel: the service may have it, so it never goes again.
                // (Not taken for dead: the next request finds out.)
                relay->metrics.hops.with({"failed"}).inc();
                spdlog::warn(
                    "{}: the relay holding it ({}) closed the hop after the request "
                    "went into its tunnel, without an answer",
                    label, owner.node);
                co_await send_error(*conn, 502, "owner_lost",
                                    fmt::format("{} is served by relay {}, which went away after "
                                                "the request went into its tunnel; it may have "
                                                "reached the service, so it was not sent again",
                                                label, owner.node),
                                    hop_retry_after);
                co_return hop_result::done;
            }
            // The owner never started it (no hop_started_line): it may go
            // again, whatever its method, while the caller's bytes are whole.
            const bool whole = !link->fed && !conn->in_eof;
            if (reused && attempt == 0 && whole) {
                // A pooled connection the owner closed as the request went.
                relay->metrics.hops.with({"retried"}).inc();
                continue;
            }
            unreachable("closed the hop without an answer");
            if (whole && requeue()) co_return hop_result::requeue;
            co_await answer_unreachable("closed the connection without answering");
            co_return hop_result::done;
        }
        link->close();  // unless it went back to the pool
        const bool clean = answer.complete && !answer.failed && link->body_sent;
        if (clean && answer.keep && !link->raw && !conn->in_eof && !relay->stopping)
            co_return hop_result::next;
        conn->close();
        co_return hop_result::done;
    }
}

}  // namespace tunnel::relay
