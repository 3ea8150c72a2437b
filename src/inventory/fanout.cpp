#include "inventory/fanout.hpp"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

namespace tunnel::inventory {

namespace {

using steady = std::chrono::steady_clock;

struct pool_state {
    pool_state(asio::any_io_executor ex, std::size_t n,
               std::function<asio::awaitable<void>(std::size_t)> w)
        : count(n), work(std::move(w)), done(ex, asio::steady_timer::time_point::max()) {}
    std::size_t next = 0;
    std::size_t count;
    std::size_t running = 0;
    std::function<asio::awaitable<void>(std::size_t)> work;
    asio::steady_timer done;
    std::exception_ptr failure;
};

// One slot: takes the next index until none is left.
asio::awaitable<void> pool_worker(std::shared_ptr<pool_state> s) {
    while (s->next < s->count) {
        const std::size_t i = s->next++;
        try {
            co_await s->work(i);
        } catch (...) {
            if (!s->failure) s->failure = std::current_exception();
        }
    }
}

struct run_context {
    exec::executor& runner;
    std::vector<fanout_target> targets;
    exec::command cmd;
    fanout_options options;
    fanout_events events;
    std::vector<host_result> results;
    std::vector<line_splitter> out_lines, err_lines;
};

void emit_chunk(run_context* ctx, std::size_t i, output_stream s, std::string_view data) {
    if (!ctx->events.on_line) return;
    auto& splitter = s == output_stream::out ? ctx->out_lines[i] : ctx->err_lines[i];
    splitter.feed(data, [&](std::string_view line) { ctx->events.on_line(i, s, line); });
}

asio::awaitable<void> run_one(run_context* ctx, std::size_t i) {
    const auto started = steady::now();
    const auto& target = ctx->targets[i];
    host_result r;
    r.name = target.name;
    if (!target.options) {
        r.status =
            is_unreachable(target.options.error()) ? host_status::unreachable : host_status::failed;
        r.error = target.options.error().message;
    } else {
        ssh::connect_options opts = *target.options;
        r.destination = opts.destination();
        exec::command cmd = ctx->cmd;
        if (ctx->options.timeout) {
            opts.connect_timeout = std::min(opts.connect_timeout, *ctx->options.timeout);
            cmd.timeout =
                cmd.timeout ? std::min(*cmd.timeout, *ctx->options.timeout) : *ctx->options.timeout;
        }
        exec::exec_events ev;
        ev.on_stdout = [ctx, i](std::string_view d) { emit_chunk(ctx, i, output_stream::out, d); };
        ev.on_stderr = [ctx, i](std::string_view d) { emit_chunk(ctx, i, output_stream::err, d); };
        exec::run_options ro;
        ro.capture = ctx->options.capture;
        auto res = co_await ctx->runner.run(opts, cmd, std::move(ev), std::move(ro));
        if (ctx->events.on_line) {
            ctx->out_lines[i].flush(
                [&](std::string_view l) { ctx->events.on_line(i, output_stream::out, l); });
            ctx->err_lines[i].flush(
                [&](std::string_view l) { ctx->events.on_line(i, output_stream::err, l); });
        }
        if (!res) {
            r.status = is_unreachable(res.error()) ? host_status::unreachable : host_status::failed;
            r.error = res.error().message;
        } else {
            r.exit_code = res->exit_code();
            r.signal = res->signal;
            r.timed_out = res->timed_out;
            r.out = std::move(res->out);
            r.err = std::move(res->err);
            r.status = r.exit_code == 0 ? host_status::ok : host_status::failed;
            if (r.timed_out)
                r.error =
                    fmt::format("timed out after {} ms", cmd.timeout ? cmd.timeout->count() : 0);
            else if (r.signal)
                r.error = "killed by signal " + *r.signal;
        }
    }
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
    ctx->results[i] = std::move(r);
    if (ctx->events.on_done) ctx->events.on_done(i, ctx->results[i]);
}

}  // namespace

std::string_view to_string(host_status s) noexcept {
    switch (s) {
        case host_status::ok:
            return "ok";
        case host_status::failed:
            return "failed";
        case host_status::unreachable:
            return "unreachable";
    }
    return "unknown";
}

bool is_unreachable(const core::error& e) noexcept {
    switch (e.code) {
        case core::errc::connection_failed:
        case core::errc::timeout:
        case core::errc::protocol_error:
        case core::errc::host_key_unknown:
        case core::errc::host_key_changed:
        case core::errc::auth_failed:
        case core::errc::auth_unavailable:
        case core::errc::circuit_open:
        case core::errc::disconnected:
            return true;
        default:
            return false;
    }
}

asio::awaitable<void> for_each_host(std::size_t count, std::size_t forks,
                                    std::function<asio::awaitable<void>(std::size_t)> work) {
    if (count == 0) co_return;
    auto ex = co_await asio::this_coro::executor;
    auto state = std::make_shared<pool_state>(ex, count, std::move(work));
    state->running = std::clamp<std::size_t>(forks, 1, count);
    for (std::size_t w = 0, n = state->running; w < n; ++w)
        asio::co_spawn(ex, pool_worker(state), [state](std::exception_ptr e) {
            if (e && !state->failure) state->failure = e;
            if (--state->running == 0) state->done.cancel();
        });
    boost::system::error_code ec;
    co_await state->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (state->failure) std::rethrow_exception(state->failure);
}

fanout_summary summarize(const std::vector<host_result>& results,
                         std::chrono::milliseconds duration) {
    fanout_summary s;
    s.duration = duration;
    for (const auto& r : results) {
        switch (r.status) {
            case host_status::ok:
                ++s.ok;
                break;
            case host_status::failed:
                ++s.failed;
                break;
            case host_status::unreachable:
                ++s.unreachable;
                break;
        }
    }
    return s;
}

asio::awaitable<std::vector<host_result>> run_on_hosts(exec::executor& runner,
                                                       std::vector<fanout_target> targets,
                                                       exec::command cmd, fanout_options options,
                                                       fanout_events events) {
    const std::size_t n = targets.size();
    run_context ctx{runner, std::move(targets), std::move(cmd), options, std::move(events), {}, {},
                    {}};
    ctx.results.resize(n);
    ctx.out_lines.resize(n);
    ctx.err_lines.resize(n);
    run_context* p = &ctx;
    co_await for_each_host(n, options.forks, [p](std::size_t i) { return run_one(p, i); });
    co_return std::move(ctx.results);
}

}  // namespace tunnel::inventory
