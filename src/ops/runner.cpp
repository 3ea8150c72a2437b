#include "ops/runner.hpp"

#include <random>

#include <fmt/format.h>

#include "inventory/fanout.hpp"
#include "ops/safe_path.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::ops {

std::string_view to_string(step_status s) noexcept {
    switch (s) {
        case step_status::ok:
            return "ok";
        case step_status::changed:
            return "changed";
        case step_status::failed:
            return "failed";
        case step_status::skipped:
            return "skipped";
        case step_status::unreachable:
            return "unreachable";
    }
    return "?";
}

namespace {

constexpr std::string_view path_prologue = "PATH=\"$PATH:/usr/sbin:/sbin\"; export PATH\n";

// A script's stdin from memory (file contents for write actions).
class string_input final : public exec::input_source {
  public:
    explicit string_input(std::string data) : data_(std::move(data)) {}
    asio::awaitable<core::result<std::string>> read() override {
        co_return std::exchange(data_, std::string());
    }

  private:
    std::string data_;
};

std::string first_line_trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string random_marker() {
    std::random_device rd;
    return fmt::format("@@tunnel-probe-{:08x}{:08x}", rd(), rd());
}

}  // namespace

struct plan_runner::host_state {
    plan_host host;
    facts f;
    std::vector<bool> applies;                        // per plan step: selected by hosts: and when:
    std::map<std::size_t, probe_data> probes;         // by plan step index (0-based)
    std::vector<std::shared_ptr<const module>> mods;  // per plan step: bound to this host
    bool probes_valid = false;
};

plan_runner::plan_runner(exec::executor& exec, const plan& p, apply_options options,
                         report_fn on_report)
    : exec_(exec), plan_(p), options_(options), on_report_(std::move(on_report)) {}

asio::awaitable<core::result<exec::exec_result>> plan_runner::run_script(
    const plan_host& h, std::string script, bool sudo, std::string input, bool with_library) {
    exec::command cmd;
    // Probes and actions get the race-free path functions (safe_path.hpp).
    static const std::string prologue = script_prologue();
    cmd.argv = {"sh", "-c",
                (with_library ? prologue : std::string(path_prologue)) + std::move(script)};
    cmd.sudo = sudo;
    exec::run_options ro;
    ro.capture = true;
    if (!input.empty()) ro.input = std::make_unique<string_input>(std::move(input));
    co_return co_await exec_.run(h.options, cmd, {}, std::move(ro));
}

asio::awaitable<core::result<void>> plan_runner::probe(host_state& hs, std::size_t from) {
    const auto marker = random_marker();
    std::string script;
    bool sudo = false;
    for (std::size_t k = from; k < hs.host.steps.size(); ++k) {
        auto i = hs.host.steps[k];
        if (!hs.applies[i]) continue;
        const auto& s = plan_.steps[i];
        sudo = sudo || s.sudo;
        script += fmt::format("echo '{} {}'\n( :\n{}\n) 2>/dev/null </dev/null\n", marker, i,
                              hs.mods[i]->probe(hs.f));
    }
    hs.probes.clear();
    hs.probes_valid = true;
    if (script.empty()) co_return core::result<void>{};
    auto r = co_await run_script(hs.host, script, sudo, {});
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status == 1 && sudo && r->out.empty())
        co_return core::fail(core::errc::permission_denied,
                             fmt::format("reading the host's state with sudo failed: {}",
                                         first_line_trimmed(r->err)));
    // Split the output at the markers.
    std::string_view out = r->out;
    std::optional<std::size_t> current;
    std::size_t section_start = 0;
    auto close_section = [&](std::size_t end) {
        if (current)
            hs.probes[*current] = probe_data(out.substr(section_start, end - section_start));
    };
    std::size_t pos = 0;
    while (pos < out.size()) {
        auto nl = out.find('\n', pos);
        auto line_end = nl == std::string_view::npos ? out.size() : nl;
        auto line = out.substr(pos, line_end - pos);
        if (line.rfind(marker, 0) == 0) {
            close_section(pos);
            current =
                std::strtoull(std::string(line.substr(marker.size() + 1)).c_str(), nullptr, 10);
            section_start = line_end + 1;
        }
        pos = line_end + 1;
    }
    close_section(out.size());
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> plan_runner::verify_fresh_login(const plan_host& h) {
    auto executor = co_await asio::this_coro::executor;
    auto opts = h.options;
    opts.connect_timeout = options_.login_check_timeout;
    // sshd re-executes itself on reload: its port is closed for a moment, so
    // a refused connection is retried until the deadline; an auth failure is not.
    const auto deadline = std::chrono::steady_clock::now() + options_.login_check_timeout;
    auto host = co_await transfer::remote_host::connect(executor, opts);
    while (!host && host.error().code == core::errc::connection_failed &&
           std::chrono::steady_clock::now() < deadline) {
        asio::steady_timer pause(executor, std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::use_awaitable);
        host = co_await transfer::remote_host::connect(executor, opts);
    }
    if (!host) co_return tl::unexpected(host.error());
    auto r = co_await (*host)->run("true", options_.login_check_timeout);
    (*host)->session()->disconnect();
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0)
        co_return core::fail(core::errc::auth_failed,
                             fmt::format("a command on the new connection exited with {}: {}",
                                         r->exit_status, first_line_trimmed(r->err)));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> plan_runner::apply(host_state& hs, const step& s,
                                                       const check_result& c) {
    for (const auto& a : c.actions) {
        auto r = co_await run_script(hs.host, a.script, s.sudo, a.input);
        if (!r) co_return tl::unexpected(r.error());
        if (r->exit_status != 0) {
            auto err = first_line_trimmed(r->err.empty() ? r->out : r->err);
            if (r->exit_status == 1 && s.sudo && err.find("sudo") != std::string::npos)
                co_return core::fail(core::errc::permission_denied,
                                     fmt::format("{}: {}", a.description, err));
            co_return core::fail(
                core::errc::io_error,
                fmt::format("{} failed (exit {}): {}", a.description, r->exit_status, err));
        }
        if (a.verify_fresh_login) {
            auto login = co_await verify_fresh_login(hs.host);
            if (!login) {
                auto rb = co_await run_script(hs.host, a.rollback, s.sudo, {});
                bool restored = rb && rb->exit_status == 0;
                co_return core::fail(
                    core::errc::denied,
                    fmt::format(
                        "a fresh SSH login failed after the change ({}); {}", login.error().message,
                        restored ? "the previous config was restored and sshd reloaded"
                                 : "restoring the previous config ALSO failed: " +
                                       (rb ? first_line_trimmed(rb->err) : rb.error().message)));
            }
        }
    }
    co_return core::result<void>{};
}

asio::awaitable<host_recap> plan_runner::run_host(plan_host host) {
    host_recap recap;
    auto hs = co_await prepare(std::move(host), recap);
    if (hs) co_await run_prepared(*hs, recap);
    co_return recap;
}

asio::awaitable<std::unique_ptr<plan_runner::host_state>> plan_runner::prepare(plan_host host,
                                                                               host_recap& recap) {
    recap.host = host.name;
    if (stop_ || host.steps.empty()) co_return nullptr;
    auto hs = std::make_unique<host_state>();
    hs->host = std::move(host);
    const auto& name = hs->host.name;

    auto host_failure = [&](const core::error& e, bool unreachable) {
        step_report rep;
        rep.host = name;
        rep.label = unreachable ? "connect" : "gather facts";
        rep.status = unreachable ? step_status::unreachable : step_status::failed;
        rep.message = e.message;
        if (unreachable)
            ++recap.unreachable;
        else
            ++recap.failed;
        if (options_.fail_fast) stop_ = true;
        on_report_(rep);
    };

    auto facts_out = co_await run_script(hs->host, facts_script(), false, {}, false);
    if (!facts_out) {
        host_failure(facts_out.error(), inventory::is_unreachable(facts_out.error()));
        co_return nullptr;
    }
    auto f = parse_facts(facts_out->out, hs->host.options.port);
    if (!f) {
        host_failure(f.error(), false);
        co_return nullptr;
    }
    hs->f = std::move(*f);
    hs->applies.assign(plan_.steps.size(), false);
    for (auto i : hs->host.steps)
        hs->applies[i] = !plan_.steps[i].when || plan_.steps[i].when->evaluate(hs->f);

    // Templates are rendered for every host before any host is changed (run_hosts).
    hs->mods.resize(plan_.steps.size());
    auto vars = hs->host.vars.is_object() ? hs->host.vars : nlohmann::json::object();
    vars["facts"] = facts_json(hs->f);
    for (auto i : hs->host.steps) {
        if (!hs->applies[i]) continue;
        const step& s = plan_.steps[i];
        auto bound = s.mod->bind(vars);
        if (!bound) {
            step_report rep;
            rep.host = name;
            rep.step = s.index;
            rep.label = s.label();
            rep.module = std::string(s.mod->kind());
            rep.status = step_status::failed;
            rep.message = fmt::format("{}: {}", rep.label, bound.error().message);
            ++recap.failed;
            render_failed_ = true;
            on_report_(rep);
            co_return nullptr;
        }
        hs->mods[i] = *bound ? std::move(*bound) : s.mod;
    }
    co_return hs;
}

void plan_runner::report_not_run(const host_state& hs, host_recap& recap) {
    step_report rep;
    rep.host = hs.host.name;
    rep.label = "plan";
    rep.status = step_status::skipped;
    rep.message = "not run: a template failed to render; nothing was changed on any host";
    ++recap.skipped;
    on_report_(rep);
}

asio::awaitable<void> plan_runner::run_prepared(host_state& hs, host_recap& recap) {
    const auto& name = hs.host.name;
    for (std::size_t k = 0; k < hs.host.steps.size(); ++k) {
        if (stop_) break;
        const auto i = hs.host.steps[k];
        const step& s = plan_.steps[i];
        const auto started = std::chrono::steady_clock::now();
        step_report rep;
        rep.host = name;
        rep.step = s.index;
        rep.label = s.label();
        const module& mod = hs.mods[i] ? *hs.mods[i] : *s.mod;
        rep.module = std::string(mod.kind());
        auto finish = [&](step_status st) {
            rep.status = st;
            rep.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started);
            switch (st) {
                case step_status::ok:
                    ++recap.ok;
                    break;
                case step_status::changed:
                    ++recap.changed;
                    break;
                case step_status::failed:
                    ++recap.failed;
                    break;
                case step_status::skipped:
                    ++recap.skipped;
                    break;
                case step_status::unreachable:
                    ++recap.unreachable;
                    break;
            }
            if (st == step_status::failed && options_.fail_fast) stop_ = true;
            on_report_(rep);
        };
        if (!hs.applies[i]) {
            rep.message = fmt::format("when: {} is false", s.when->text());
            finish(step_status::skipped);
            continue;
        }
        if (!hs.probes_valid) {
            auto pr = co_await probe(hs, k);
            if (!pr) {
                rep.message =
                    fmt::format("{}: reading the host's state: {}", rep.label, pr.error().message);
                finish(inventory::is_unreachable(pr.error()) ? step_status::unreachable
                                                             : step_status::failed);
                break;
            }
        }
        auto c = mod.check(hs.f, hs.probes[i]);
        if (!c && options_.check && recap.changed > 0 && c.error().code == core::errc::not_found) {
            // In check mode earlier changes were not made, so what this step
            // needs (a user, a package) may be missing only for that reason.
            rep.changes.push_back(fmt::format("cannot check before earlier steps are applied: {}",
                                              c.error().message));
            finish(step_status::changed);
            continue;
        }
        if (!c) {
            rep.message = fmt::format("{}: {}", rep.label, c.error().message);
            finish(step_status::failed);
            break;
        }
        rep.changes = c->changes;
        rep.diff = c->diff;
        if (!c->changed()) {
            finish(step_status::ok);
            continue;
        }
        if (options_.check) {
            finish(step_status::changed);
            continue;
        }
        auto applied = co_await apply(hs, s, *c);
        hs.probes_valid = false;  // what later steps read may have changed
        if (!applied) {
            rep.message = fmt::format("{}: {}", rep.label, applied.error().message);
            finish(inventory::is_unreachable(applied.error()) ? step_status::unreachable
                                                              : step_status::failed);
            break;
        }
        finish(step_status::changed);
    }
    co_return;
}

core::result<std::vector<std::vector<std::size_t>>> steps_for_hosts(
    const plan& p, const std::vector<std::string>& hosts,
    const std::function<core::result<std::vector<std::string>>(std::string_view)>& select) {
    std::vector<std::vector<std::size_t>> out(hosts.size());
    std::map<std::string, std::vector<std::string>, std::less<>> cache;
    for (std::size_t i = 0; i < p.steps.size(); ++i) {
        const auto& pattern = p.steps[i].hosts;
        auto it = cache.find(pattern);
        if (it == cache.end()) {
            auto sel = select(pattern);
            if (!sel)
                return core::fail(sel.error().code,
                                  fmt::format("{}: {}.hosts: {}", p.file, p.steps[i].label(),
                                              sel.error().message));
            it = cache.emplace(pattern, std::move(*sel)).first;
        }
        for (std::size_t h = 0; h < hosts.size(); ++h)
            if (std::find(it->second.begin(), it->second.end(), hosts[h]) != it->second.end())
                out[h].push_back(i);
    }
    return out;
}

std::string format_recap(const host_recap& r, std::size_t name_width) {
    return fmt::format("{:<{}}  ok={} changed={} failed={} skipped={} unreachable={}", r.host,
                       std::max(name_width, r.host.size()), r.ok, r.changed, r.failed, r.skipped,
                       r.unreachable);
}

std::string format_report(const step_report& r, bool check, bool with_diff) {
    std::string status(to_string(r.status));
    if (check && r.status == step_status::changed) status = "changed (check: not applied)";
    std::string s = fmt::format("{}: {} {}", r.host, status, r.label);
    if (!r.message.empty() && r.status != step_status::failed &&
        r.status != step_status::unreachable)
        s += fmt::format(" ({})", r.message);
    s += "\n";
    if (r.status == step_status::failed || r.status == step_status::unreachable)
        s += fmt::format("  {}\n", r.message);
    for (const auto& c : r.changes) s += fmt::format("  - {}\n", c);
    if (with_diff && !r.diff.empty()) s += r.diff;
    return s;
}

nlohmann::json to_json(const step_report& r) {
    nlohmann::json j{{"host", r.host},
                     {"step", r.step},
                     {"label", r.label},
                     {"module", r.module},
                     {"status", to_string(r.status)},
                     {"changes", r.changes},
                     {"duration_ms", r.duration.count()}};
    if (!r.diff.empty()) j["diff"] = r.diff;
    if (!r.message.empty()) j["message"] = r.message;
    return j;
}

nlohmann::json to_json(const host_recap& r) {
    return {{"ok", r.ok},
            {"changed", r.changed},
            {"failed", r.failed},
            {"skipped", r.skipped},
            {"unreachable", r.unreachable}};
}

}  // namespace tunnel::ops

namespace tunnel::ops {

asio::awaitable<std::vector<host_recap>> run_hosts(plan_runner& runner,
                                                   std::vector<plan_host> hosts, unsigned forks) {
    std::vector<host_recap> recaps(hosts.size());
    for (std::size_t i = 0; i < hosts.size(); ++i) recaps[i].host = hosts[i].name;
    // Facts and templates for every host first: a template that cannot be
    // rendered for one host stops the plan before any host is changed.
    std::vector<std::unique_ptr<plan_runner::host_state>> prepared(hosts.size());
    // The closures live in for_each_host's std::function until every host is done.
    co_await inventory::for_each_host(
        hosts.size(), forks, [&](std::size_t i) -> asio::awaitable<void> {
            prepared[i] = co_await runner.prepare(std::move(hosts[i]), recaps[i]);
        });
    if (runner.render_failed()) {
        for (std::size_t i = 0; i < prepared.size(); ++i)
            if (prepared[i]) runner.report_not_run(*prepared[i], recaps[i]);
        co_return recaps;
    }
    co_await inventory::for_each_host(hosts.size(), forks,
                                      [&](std::size_t i) -> asio::awaitable<void> {
                                          if (prepared[i])
                                              co_await runner.run_prepared(*prepared[i], recaps[i]);
                                      });
    co_return recaps;
}

}  // namespace tunnel::ops
