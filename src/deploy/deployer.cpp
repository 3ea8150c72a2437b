#include "deploy/deployer.hpp"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/utc_time.hpp"
#include "deploy/blue_green.hpp"
#include "deploy/release_scripts.hpp"
#include "inventory/fanout.hpp"
#include "transfer/progress.hpp"

namespace tunnel::deploy {

std::string_view to_string(host_status s) noexcept {
    switch (s) {
        case host_status::pending:
            return "not switched";
        case host_status::deployed:
            return "deployed";
        case host_status::failed:
            return "failed";
        case host_status::rolled_back:
            return "rolled back";
        case host_status::unreachable:
            return "unreachable";
        case host_status::checked:
            return "checked";
    }
    return "?";
}

bool deploy_report::ok() const noexcept {
    return stopped.empty() && std::all_of(hosts.begin(), hosts.end(), [](const host_outcome& h) {
               return h.status == host_status::deployed || h.status == host_status::checked;
           });
}

namespace {

struct host_run {
    host_target target;
    std::unique_ptr<release_host> h;
    host_outcome out;
    host_state st;
    bool prepared = false;
    bool switched = false;
};

struct context {
    const deploy_config& c;
    const artifact* a = nullptr;  // null for rollbacks
    const run_options& o;
    std::string id;
    asio::any_io_executor ex;

    void progress(const std::string& line) const {
        if (o.on_progress) o.on_progress(line);
    }
    [[nodiscard]] std::string release_dir(const release_host& h) const {
        return h.config().root + "/releases/" + id;
    }
};

std::string now_iso() {
    return core::utc_iso8601(std::chrono::system_clock::now());
}

void fail(host_run& r, const context& ctx, std::string_view where, const core::error& e) {
    r.out.status =
        inventory::is_unreachable(e) && !r.h ? host_status::unreachable : host_status::failed;
    r.out.message = e.message;
    ctx.progress(fmt::format("[{}] {}: FAILED: {}", where, r.out.name, e.message));
}

asio::awaitable<void> connect_host(host_run& r, const context& ctx) {
    auto h = co_await release_host::connect(ctx.ex, r.target, ctx.c);
    if (!h) {
        fail(r, ctx, "connect", h.error());
        co_return;
    }
    r.h = std::move(*h);
}

// Reads the host's releases into r.st and records its current one as the
// previous; false (and the host failed at `where`) if they cannot be read.
asio::awaitable<bool> read_state(host_run& r, const context& ctx, const char* where) {
    auto st = co_await r.h->state(0);
    if (!st) {
        fail(r, ctx, where, st.error());
        co_return false;
    }
    r.st = std::move(*st);
    r.out.previous = r.st.current;
    co_return true;
}

asio::awaitable<void> prepare_host(host_run& r, const context& ctx) {
    co_await connect_host(r, ctx);
    if (!r.h) co_return;
    const bool have_state = co_await read_state(r, ctx, "prepare");
    if (!have_state) co_return;
    if (ctx.o.check) {
        r.out.status = host_status::checked;
        r.out.message =
            fmt::format("would upload {} ({} bytes, skipped if unchanged) and switch {} -> {}",
                        to_string(ctx.a->kind), ctx.a->bytes,
                        r.st.current.empty() ? "(no release)" : r.st.current, ctx.id);
        if (ctx.c.strategy.type == strategy_type::blue_green) {
            r.out.slot = blue_green::target_slot(r.st);
            r.out.message = fmt::format("would upload {} ({} bytes, skipped if unchanged), {}",
                                        to_string(ctx.a->kind), ctx.a->bytes,
                                        blue_green::describe_plan(r.h->config(), r.st, ctx.id));
        }
        co_return;
    }
    if (auto l = co_await r.h->lock(ctx.o.holder_json); !l) {
        fail(r, ctx, "prepare", l.error());
        co_return;
    }
    auto hooks = co_await r.h->run_hooks("before_upload", ctx.c.hooks.before_upload,
                                         r.h->config().root, ctx.id, r.st.current);
    if (!hooks) {
        fail(r, ctx, "prepare", hooks.error());
        co_return;
    }
    transfer::progress quiet(false);
    auto up = co_await r.h->upload(*ctx.a, quiet);
    if (!up) {
        fail(r, ctx, "prepare", up.error());
        co_return;
    }
    r.out.uploaded = *up;
    if (auto u = co_await r.h->unpack(*ctx.a, ctx.id); !u) {
        fail(r, ctx, "prepare", u.error());
        co_return;
    }
    if (auto t = co_await r.h->write_templates(r.target.files, ctx.id); !t) {
        fail(r, ctx, "prepare", t.error());
        co_return;
    }
    auto after = co_await r.h->run_hooks("after_upload", ctx.c.hooks.after_upload,
                                         ctx.release_dir(*r.h), ctx.id, r.st.current);
    if (!after) {
        fail(r, ctx, "prepare", after.error());
        co_return;
    }
    r.prepared = true;
    ctx.progress(fmt::format("[prepare] {}: {}, release {} unpacked", r.out.name,
                             r.out.uploaded ? "artifact uploaded" : "artifact unchanged (skipped)",
                             ctx.id));
}

// Switches one host to ctx.id and checks it; a failure leaves r.out failed.
asio::awaitable<void> switch_host(host_run& r, const context& ctx, std::string where) {
    if (ctx.c.strategy.type == strategy_type::blue_green) {
        auto s = co_await blue_green::deploy(*r.h, r.st, ctx.id, true);
        r.switched = s.switched;
        r.out.slot = s.slot;
        if (!s.result) {
            fail(r, ctx, where, s.result.error());
            co_return;
        }
        r.out.status = host_status::deployed;
        ctx.progress(fmt::format("[{}] {}: {} started in slot {}, healthy, traffic switched to {}",
                                 where, r.out.name, ctx.id, s.slot, s.slot));
        co_return;
    }
    auto before = co_await r.h->run_hooks("before_switch", ctx.c.hooks.before_switch,
                                          ctx.release_dir(*r.h), ctx.id, r.st.current);
    if (!before) {
        fail(r, ctx, where, before.error());
        co_return;
    }
    if (auto s = co_await r.h->switch_to(ctx.id, r.st.current); !s) {
        fail(r, ctx, where, s.error());
        co_return;
    }
    r.switched = true;
    auto after = co_await r.h->run_hooks("after_switch", ctx.c.hooks.after_switch,
                                         r.h->config().root + "/current", ctx.id, r.st.current);
    if (!after) {
        fail(r, ctx, where, after.error());
        co_return;
    }
    if (auto u = co_await r.h->restart_unit(); !u) {
        fail(r, ctx, where, u.error());
        co_return;
    }
    if (auto h = co_await r.h->check_health(); !h) {
        fail(r, ctx, where, h.error());
        co_return;
    }
    r.out.status = host_status::deployed;
    ctx.progress(fmt::format("[{}] {}: switched to {}{}{}", where, r.out.name, ctx.id,
                             ctx.c.unit ? ", " + *ctx.c.unit + " active" : "",
                             ctx.c.health.empty() ? "" : ", healthy"));
}

// Switches a host back to the release it was on before this deploy.
asio::awaitable<void> switch_back(host_run& r, const context& ctx, std::string why) {
    if (!r.switched) co_return;
    const bool bg = ctx.c.strategy.type == strategy_type::blue_green;
    core::result<void> s;
    if (bg)  // traffic back to the old slot, still running: no restart
        s = co_await blue_green::switch_back(*r.h, r.st, r.out.slot);
    else
        s = co_await r.h->switch_to(r.st.current, r.st.previous);
    core::result<void> u;
    if (s && !r.st.current.empty() && !bg) u = co_await r.h->restart_unit();
    const auto back = r.st.current.empty() ? std::string("no release") : r.st.current;
    if (!s || !u) {
        r.out.status = host_status::failed;
        r.out.message +=
            fmt::format("{}switching back to {} FAILED: {}", r.out.message.empty() ? "" : "; ",
                        back, !s ? s.error().message : u.error().message);
        ctx.progress(fmt::format("[rollback] {}: switching back to {} FAILED", r.out.name, back));
        co_return;
    }
    r.switched = false;
    if (r.out.status != host_status::failed) {
        r.out.status = host_status::rolled_back;
        r.out.message = why;
    } else {
        r.out.message += "; switched back to " + back;
    }
    ctx.progress(fmt::format("[rollback] {}: back on {} ({})", r.out.name, back, why));
}

asio::awaitable<void> finish_host(host_run& r, const context& ctx) {
    if (!r.h) co_return;
    if (r.h->locked()) {
        const bool deployed = r.out.status == host_status::deployed;
        if (!r.switched && r.prepared && !deployed) co_await r.h->discard(ctx.id);
        if (deployed) {
            auto p = co_await r.h->prune();
            if (p) r.out.pruned = std::move(*p);
        }
        nlohmann::json entry{
            {"id", ctx.id},
            {"time", now_iso()},
            {"action", "deploy"},
            {"artifact_sha256", ctx.a ? ctx.a->sha256 : ""},
            {"user", ctx.o.user},
            {"strategy", to_string(ctx.c.strategy.type)},
            {"result", deployed ? "success" : std::string(to_string(r.out.status))},
            {"previous", r.st.current}};
        if (!r.out.slot.empty()) entry["slot"] = r.out.slot;
        if (!r.out.message.empty()) entry["message"] = r.out.message;
        auto logged = co_await r.h->append_log(entry);
        if (!logged) r.out.message += "; " + logged.error().message;
        const auto& cmds = deployed ? ctx.c.hooks.after_success : ctx.c.hooks.after_failure;
        auto dir = deployed ? r.h->config().root + "/current" : r.h->config().root;
        auto hooks = co_await r.h->run_hooks(deployed ? "after_success" : "after_failure", cmds,
                                             dir, ctx.id, r.st.current);
        if (!hooks) {
            r.out.message += (r.out.message.empty() ? "" : "; ") + hooks.error().message;
            ctx.progress(fmt::format("[finish] {}: {}", r.out.name, hooks.error().message));
        }
        co_await r.h->unlock();
    }
    r.h->close();
}

std::size_t count_failed(const std::vector<host_run>& hs) {
    return static_cast<std::size_t>(std::count_if(hs.begin(), hs.end(), [](const host_run& r) {
        return r.out.status == host_status::failed || r.out.status == host_status::unreachable;
    }));
}

asio::awaitable<void> for_hosts(std::vector<std::size_t> which, std::size_t forks,
                                std::function<asio::awaitable<void>(std::size_t)> work) {
    co_await inventory::for_each_host(
        which.size(), forks,
        [&](std::size_t k) -> asio::awaitable<void> { co_await work(which[k]); });
}

std::vector<host_run> make_runs(std::vector<host_target> hosts) {
    std::vector<host_run> hs(hosts.size());
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        hs[i].out.name = hosts[i].name;
        hs[i].target = std::move(hosts[i]);
    }
    return hs;
}

std::vector<std::size_t> all_of(std::size_t n) {
    std::vector<std::size_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = i;
    return v;
}

}  // namespace

asio::awaitable<deploy_report> run_deploy(const deploy_config& c, const artifact& a,
                                          std::vector<host_target> hosts, run_options o) {
    deploy_report rep;
    rep.id = scripts::new_release_id();
    rep.sha256 = a.sha256;
    rep.strategy = std::string(to_string(c.strategy.type));
    auto hs = make_runs(std::move(hosts));
    // (the executor first, in a named local: a co_await inside the braces
    // destroyed ctx.id under g++ 12)
    asio::any_io_executor ex = co_await asio::this_coro::executor;
    context ctx{c, &a, o, rep.id, ex};
    auto finish = [&]() -> asio::awaitable<void> {
        co_await for_hosts(all_of(hs.size()), o.forks, [&](std::size_t i) -> asio::awaitable<void> {
            co_await finish_host(hs[i], ctx);
        });
        for (auto& r : hs) rep.hosts.push_back(std::move(r.out));
    };
    ctx.progress(fmt::format("deploying {} release {} ({} {}, sha256 {}) to {} host{} ({})", c.app,
                             rep.id, to_string(a.kind), a.path, a.sha256.substr(0, 12), hs.size(),
                             hs.size() == 1 ? "" : "s", rep.strategy));
    co_await for_hosts(all_of(hs.size()), o.forks, [&](std::size_t i) -> asio::awaitable<void> {
        co_await prepare_host(hs[i], ctx);
    });
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < hs.size(); ++i)
        if (hs[i].prepared || hs[i].out.status == host_status::checked) ready.push_back(i);
    const auto batches = plan_batches(c.strategy, ready.size());
    rep.batches = batches.size();
    if (o.check) {
        for (std::size_t b = 0; b < batches.size(); ++b)
            for (auto k : batches[b]) hs[ready[k]].out.batch = b + 1;
        co_await finish();
        co_return rep;
    }
    const auto total = hs.size();
    if (exceeds_max_fail(c.strategy.max_fail_percentage, count_failed(hs), total)) {
        rep.stopped = fmt::format(
            "{} of {} host{} failed before the switch (max_fail_percentage {}): nothing was "
            "switched",
            count_failed(hs), total, total == 1 ? "" : "s", c.strategy.max_fail_percentage);
        ctx.progress(rep.stopped);
        co_await finish();
        co_return rep;
    }
    std::vector<std::size_t> switched_so_far;
    for (std::size_t b = 0; b < batches.size(); ++b) {
        std::vector<std::size_t> batch;
        for (auto k : batches[b]) batch.push_back(ready[k]);
        const auto where = fmt::format("batch {}/{}", b + 1, batches.size());
        std::string names;
        for (auto i : batch) names += (names.empty() ? "" : ", ") + hs[i].out.name;
        ctx.progress(fmt::format("[{}] switching {}", where, names));
        for (auto i : batch) hs[i].out.batch = b + 1;
        co_await for_hosts(batch, o.forks, [&](std::size_t i) -> asio::awaitable<void> {
            co_await switch_host(hs[i], ctx, where);
        });
        auto batch_failed = [&] {
            return std::any_of(batch.begin(), batch.end(), [&](std::size_t i) {
                return hs[i].out.status != host_status::deployed;
            });
        };
        if (!batch_failed() && c.strategy.type == strategy_type::canary && b == 0 &&
            batches.size() > 1 && c.strategy.canary_wait.count() > 0) {
            ctx.progress(fmt::format("[{}] canary: waiting {} before checking health again", where,
                                     core::format_duration(c.strategy.canary_wait)));
            asio::steady_timer pause(ctx.ex, c.strategy.canary_wait);
            co_await pause.async_wait(asio::use_awaitable);
            co_await for_hosts(batch, o.forks, [&](std::size_t i) -> asio::awaitable<void> {
                auto h = co_await hs[i].h->check_health();
                if (!h) fail(hs[i], ctx, where, h.error());
            });
        }
        if (batch_failed()) {
            co_await for_hosts(batch, o.forks, [&](std::size_t i) -> asio::awaitable<void> {
                co_await switch_back(hs[i], ctx, fmt::format("its batch ({}) failed", where));
            });
        } else {
            switched_so_far.insert(switched_so_far.end(), batch.begin(), batch.end());
        }
        if (exceeds_max_fail(c.strategy.max_fail_percentage, count_failed(hs), total)) {
            rep.stopped = fmt::format(
                "{} of {} host{} failed, more than max_fail_percentage {}: every switched host "
                "was switched back",
                count_failed(hs), total, total == 1 ? "" : "s", c.strategy.max_fail_percentage);
            ctx.progress(rep.stopped);
            rep.fleet_rolled_back = !switched_so_far.empty();
            co_await for_hosts(switched_so_far, o.forks,
                               [&](std::size_t i) -> asio::awaitable<void> {
                                   co_await switch_back(hs[i], ctx, "max_fail_percentage exceeded");
                               });
            break;
        }
    }
    co_await finish();
    co_return rep;
}

namespace {

// The release before the current one: the recorded previous when it is
// still there, else the newest older release.
std::string release_before(const host_state& st) {
    if (!st.previous.empty() && st.previous != st.current &&
        std::find(st.releases.begin(), st.releases.end(), st.previous) != st.releases.end())
        return st.previous;
    std::string best;
    for (const auto& r : st.releases)
        if (r < st.current || st.current.empty()) best = r;
    return best == st.current ? std::string() : best;
}

asio::awaitable<void> rollback_host(host_run& r, const context& ctx,
                                    const std::optional<std::string>& to) {
    co_await connect_host(r, ctx);
    if (!r.h) co_return;
    if (auto l = co_await r.h->lock(ctx.o.holder_json); !l) {
        fail(r, ctx, "rollback", l.error());
        co_return;
    }
    const bool have_state = co_await read_state(r, ctx, "rollback");
    if (!have_state) co_return;
    std::string target = to ? *to : release_before(r.st);
    if (target.empty()) {
        fail(r, ctx, "rollback",
             {core::errc::not_found, fmt::format("no release before {} to roll back to",
                                                 r.st.current.empty() ? "(none)" : r.st.current)});
        co_return;
    }
    if (std::find(r.st.releases.begin(), r.st.releases.end(), target) == r.st.releases.end()) {
        fail(r, ctx, "rollback",
             {core::errc::not_found,
              fmt::format("release {} is not on this host (see tunnel releases)", target)});
        co_return;
    }
    r.out.message = "on " + target;
    nlohmann::json entry{{"id", target},       {"time", now_iso()},   {"action", "rollback"},
                         {"user", ctx.o.user}, {"result", "success"}, {"previous", r.st.current}};
    if (ctx.c.strategy.type == strategy_type::blue_green && target != r.st.current) {
        auto s = co_await blue_green::rollback(*r.h, r.st, target);
        r.out.slot = s.slot;
        if (!s.result) {
            fail(r, ctx, "rollback", s.result.error());
            co_return;
        }
        entry["slot"] = s.slot;
        r.out.message = fmt::format("{} -> {} (slot {} live)", r.st.current, target, s.slot);
    } else if (target != r.st.current) {
        if (auto s = co_await r.h->switch_to(target, r.st.current); !s) {
            fail(r, ctx, "rollback", s.error());
            co_return;
        }
        if (auto u = co_await r.h->restart_unit(); !u) {
            fail(r, ctx, "rollback", u.error());
            co_return;
        }
        if (auto h = co_await r.h->check_health(); !h) {
            fail(r, ctx, "rollback", h.error());
            co_return;
        }
        r.out.message =
            fmt::format("{} -> {}", r.st.current.empty() ? "(none)" : r.st.current, target);
    }
    r.out.status = host_status::deployed;
    ctx.progress(fmt::format("[rollback] {}: {}", r.out.name, r.out.message));
    auto logged = co_await r.h->append_log(entry);
    (void)logged;
}

}  // namespace

asio::awaitable<deploy_report> run_rollback(const deploy_config& c, std::vector<host_target> hosts,
                                            std::optional<std::string> to, run_options o) {
    deploy_report rep;
    rep.id = to.value_or("previous");
    rep.strategy = "rollback";
    auto hs = make_runs(std::move(hosts));
    asio::any_io_executor ex = co_await asio::this_coro::executor;
    context ctx{c, nullptr, o, rep.id, ex};
    co_await for_hosts(all_of(hs.size()), o.forks, [&](std::size_t i) -> asio::awaitable<void> {
        co_await rollback_host(hs[i], ctx, to);
        if (hs[i].h) {
            co_await hs[i].h->unlock();
            hs[i].h->close();
        }
    });
    for (auto& r : hs) rep.hosts.push_back(std::move(r.out));
    co_return rep;
}

namespace {

// One SSH session per host, `op(host, out)` on it, then closed; a host that
// cannot be reached gets its error in `out.error`. `Out` has `name` and `error`.
template <class Out, class Op>
asio::awaitable<std::vector<Out>> on_each_host(const deploy_config& c,
                                               std::vector<host_target> hosts, std::size_t forks,
                                               Op op) {
    std::vector<Out> out(hosts.size());
    auto ex = co_await asio::this_coro::executor;
    co_await for_hosts(all_of(hosts.size()), forks, [&](std::size_t i) -> asio::awaitable<void> {
        out[i].name = hosts[i].name;
        auto h = co_await release_host::connect(ex, hosts[i], c);
        if (!h) {
            out[i].error = h.error().message;
            co_return;
        }
        co_await op(**h, out[i]);
        (*h)->close();
    });
    co_return out;
}

}  // namespace

asio::awaitable<std::vector<host_releases>> list_releases(const deploy_config& c,
                                                          std::vector<host_target> hosts,
                                                          std::size_t forks) {
    // Named, not a temporary in the co_await's arguments (g++ 12 trap).
    const auto read_state = [](release_host& h, host_releases& out) -> asio::awaitable<void> {
        auto st = co_await h.state(500);
        if (!st)
            out.error = st.error().message;
        else
            out.state = std::move(*st);
    };
    auto out = co_await on_each_host<host_releases>(c, std::move(hosts), forks, read_state);
    co_return out;
}

asio::awaitable<std::vector<host_unlock>> unlock_hosts(const deploy_config& c,
                                                       std::vector<host_target> hosts,
                                                       std::size_t forks) {
    const auto unlock = [](release_host& h, host_unlock& out) -> asio::awaitable<void> {
        auto r = co_await h.force_unlock();
        if (!r)
            out.error = r.error().message;
        else
            out.holder = std::move(*r);
    };
    auto out = co_await on_each_host<host_unlock>(c, std::move(hosts), forks, unlock);
    co_return out;
}

nlohmann::json to_json(const deploy_report& r) {
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& h : r.hosts) {
        nlohmann::json j{{"host", h.name},         {"status", to_string(h.status)},
                         {"previous", h.previous}, {"batch", h.batch},
                         {"uploaded", h.uploaded}, {"pruned", h.pruned}};
        if (!h.slot.empty()) j["slot"] = h.slot;
        if (!h.message.empty()) j["message"] = h.message;
        hosts.push_back(std::move(j));
    }
    nlohmann::json j{{"id", r.id},     {"strategy", r.strategy},
                     {"ok", r.ok()},   {"batches", r.batches},
                     {"hosts", hosts}, {"fleet_rolled_back", r.fleet_rolled_back}};
    if (!r.sha256.empty()) j["artifact_sha256"] = r.sha256;
    if (!r.stopped.empty()) j["stopped"] = r.stopped;
    return j;
}

std::string format_recap(const deploy_report& r) {
    std::size_t width = 4;
    for (const auto& h : r.hosts) width = std::max(width, h.name.size());
    std::string s = fmt::format("\nRECAP {} {}\n", r.strategy, r.id);
    std::size_t deployed = 0;
    for (const auto& h : r.hosts) {
        deployed += h.status == host_status::deployed ? 1 : 0;
        s += fmt::format("{:<{}}  {:<12}", h.name, width, to_string(h.status));
        if (h.batch > 0) s += fmt::format(" batch {}", h.batch);
        if (!h.slot.empty()) s += " slot " + h.slot;
        if (!h.pruned.empty()) s += fmt::format(" pruned {}", h.pruned.size());
        if (!h.message.empty()) s += "  " + h.message;
        s += "\n";
    }
    if (!r.stopped.empty()) s += "stopped: " + r.stopped + "\n";
    s += fmt::format("{} of {} host{} {}\n", deployed, r.hosts.size(),
                     r.hosts.size() == 1 ? "" : "s",
                     r.strategy == "rollback" ? "rolled back" : "on the new release");
    return s;
}

std::string format_releases(const host_releases& h) {
    std::string s = h.name + ":\n";
    if (!h.error.empty()) return s + "  error: " + h.error + "\n";
    if (!h.state.root_exists || h.state.releases.empty()) return s + "  (no releases)\n";
    for (auto it = h.state.releases.rbegin(); it != h.state.releases.rend(); ++it) {
        const nlohmann::json* last = nullptr;
        for (const auto& e : h.state.log)
            if (e.value("id", "") == *it && e.value("action", "") == "deploy") last = &e;
        std::string info;
        if (last)
            info = fmt::format("{}  {}  {}  sha256 {}", last->value("time", ""),
                               last->value("user", ""), last->value("result", ""),
                               last->value("artifact_sha256", "").substr(0, 12));
        s += fmt::format("  {} {:<22} {}{}{}\n", *it == h.state.current ? '*' : ' ', *it, info,
                         *it == h.state.previous ? "  (previous)" : "",
                         blue_green::slot_marks(h.state, *it));
    }
    return s;
}

}  // namespace tunnel::deploy
