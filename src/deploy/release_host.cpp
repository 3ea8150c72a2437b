#include "deploy/release_host.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/log_text.hpp"
#include "core/shell_quote.hpp"
#include "deploy/release_scripts.hpp"
#include "transfer/checksum.hpp"
#include "transfer/file_copy.hpp"
#include "transfer/sync.hpp"

namespace tunnel::deploy {

namespace {

constexpr std::chrono::milliseconds step_timeout{std::chrono::minutes(2)};
constexpr std::chrono::milliseconds hook_timeout{std::chrono::minutes(30)};

std::string last_lines(std::string_view text, std::size_t max = 300) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    if (text.size() > max) text = text.substr(text.size() - max);
    return core::log_text(text, max);
}

std::string output_of(const transfer::command_output& r) {
    return last_lines(r.err.empty() ? r.out : r.err + (r.out.empty() ? "" : " / " + r.out));
}

std::vector<std::string> lines_with(std::string_view out, std::string_view tag) {
    std::vector<std::string> v;
    std::size_t pos = 0;
    while (pos < out.size()) {
        auto nl = out.find('\n', pos);
        auto line = out.substr(pos, nl == std::string_view::npos ? out.npos : nl - pos);
        if (line.size() >= tag.size() + 1 && line.substr(0, tag.size()) == tag &&
            line[tag.size()] == ' ')
            v.emplace_back(line.substr(tag.size() + 1));
        else if (line == tag)
            v.emplace_back();
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    return v;
}

}  // namespace

std::string describe_holder(const std::string& holder_json) {
    auto j = nlohmann::json::parse(holder_json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "an unknown holder (no holder file)";
    auto get = [&](const char* k) {
        return j.contains(k) && j[k].is_string() ? core::log_text(j[k].get<std::string>(), 80)
                                                 : std::string("?");
    };
    auto pid = j.contains("pid") && j["pid"].is_number() ? j["pid"].dump() : "?";
    return fmt::format("{}@{} (pid {}) since {}", get("user"), get("host"), pid, get("since"));
}

asio::awaitable<core::result<std::unique_ptr<release_host>>> release_host::connect(
    asio::any_io_executor executor, const host_target& target, const deploy_config& c) {
    auto h = co_await transfer::remote_host::connect(executor, target.options);
    if (!h) co_return tl::unexpected(h.error());
    auto config = c;
    if (!target.root.empty()) config.root = target.root;
    co_return std::unique_ptr<release_host>(new release_host(target.name, std::move(*h), config));
}

void release_host::close() {
    if (host_) host_->session()->disconnect();
}

asio::awaitable<core::result<transfer::command_output>> release_host::sh(
    std::string script, std::chrono::milliseconds timeout) {
    co_return co_await host_->run("sh -c " + core::shell_quote(script), timeout);
}

asio::awaitable<core::result<void>> release_host::lock(std::string holder_json) {
    auto r = co_await sh(scripts::lock(config_, holder_json), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0)
        co_return core::fail(core::errc::io_error,
                             fmt::format("cannot create {}/.tunnel-deploy (exit {}): {}",
                                         config_.root, r->exit_status, output_of(*r)));
    if (r->out.rfind("LOCKED", 0) == 0) {
        holder_ = std::move(holder_json);
        co_return core::result<void>{};
    }
    auto nl = r->out.find('\n');
    auto holder = nl == std::string::npos ? std::string() : r->out.substr(nl + 1);
    while (!holder.empty() && holder.back() == '\n') holder.pop_back();
    co_return core::fail(
        core::errc::denied,
        fmt::format("{} is locked by another deploy: {}; if that deploy is gone, run "
                    "`tunnel deploy {} -i INVENTORY --unlock`",
                    config_.root, describe_holder(holder), config_.file));
}

asio::awaitable<void> release_host::unlock() {
    if (holder_.empty()) co_return;
    auto r = co_await sh(scripts::unlock(config_, holder_), step_timeout);
    (void)r;
    holder_.clear();
}

asio::awaitable<core::result<std::optional<std::string>>> release_host::force_unlock() {
    auto r = co_await sh(scripts::force_unlock(config_), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    auto held = lines_with(r->out, "HELD");
    if (held.empty()) co_return std::optional<std::string>{};
    co_return std::optional<std::string>{held.front()};
}

asio::awaitable<core::result<host_state>> release_host::state(unsigned log_lines) {
    auto r = co_await sh(scripts::read_state(config_, log_lines), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    host_state s;
    if (r->out.rfind("NOROOT", 0) == 0) {
        s.root_exists = false;
        co_return s;
    }
    auto cur = lines_with(r->out, "CURRENT");
    if (!cur.empty()) s.current = cur.front();
    auto prev = lines_with(r->out, "PREVIOUS");
    if (!prev.empty()) s.previous = prev.front();
    for (const auto& l : lines_with(r->out, "SLOT")) {
        auto sp = l.find(' ');
        if (sp != std::string::npos) s.slots[l.substr(0, sp)] = l.substr(sp + 1);
    }
    auto live = lines_with(r->out, "LIVE");
    if (!live.empty()) s.live_slot = live.front();
    s.releases = lines_with(r->out, "RELEASE");
    std::sort(s.releases.begin(), s.releases.end());
    for (const auto& l : lines_with(r->out, "LOG")) {
        auto j = nlohmann::json::parse(l, nullptr, false);
        if (!j.is_discarded() && j.is_object()) s.log.push_back(std::move(j));
    }
    co_return s;
}

asio::awaitable<core::result<bool>> release_host::upload(const artifact& a, transfer::progress& p) {
    const auto remote = scripts::artifact_path(config_, a);
    if (a.kind == artifact_kind::directory) {
        transfer::sync_options o;
        o.checksum = true;
        o.delete_extraneous = true;
        transfer::transfer_stats stats;
        std::function<void(const transfer::sync_action&)> no_report;
        auto r =
            co_await transfer::sync_trees(*host_, true, a.path, remote, o, p, stats, no_report);
        if (!r) co_return tl::unexpected(r.error());
        if (stats.failed > 0)
            co_return core::fail(core::errc::io_error,
                                 fmt::format("uploading {} to {}: {}", a.path, remote,
                                             stats.errors.empty() ? "failed" : stats.errors[0]));
        co_return stats.files > 0 || stats.deleted > 0 || stats.links > 0;
    }
    auto c = co_await host_->sftp(0);
    if (!c) co_return tl::unexpected(c.error());
    // The artifact's SHA-256 is known (inspect_artifact): compare the host's
    // copy with it here rather than have upload_file hash the local file
    // again for every host.
    auto existing = co_await (*c)->stat(remote);
    if (existing && existing->is_reg() && existing->size == a.bytes) {
        auto theirs = co_await transfer::sha256_remote(*host_, **c, remote);
        if (theirs && *theirs == a.sha256) co_return false;
    }
    transfer::copy_options o;
    o.always = true;  // compared above
    auto r = co_await transfer::upload_file(*host_, **c, a.path, remote, o, p);
    if (!r) co_return tl::unexpected(r.error());
    co_return true;
}

asio::awaitable<core::result<void>> release_host::unpack(const artifact& a, std::string id) {
    auto r = co_await sh(scripts::unpack(config_, a, id), hook_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0 || r->out.find("UNPACKED") == std::string::npos)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("unpacking {} into {}/releases/{} failed (exit {}): {}", to_string(a.kind),
                        config_.root, id, r->exit_status, output_of(*r)));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> release_host::write_templates(
    const std::vector<rendered_file>& files, std::string id) {
    for (const auto& f : files) {
        auto r = co_await sh(write_rendered_script(config_, id, f), step_timeout);
        if (!r) co_return tl::unexpected(r.error());
        if (r->exit_status != 0 || r->out.find("WRITTEN") == std::string::npos)
            co_return core::fail(
                core::errc::io_error,
                fmt::format("writing template {} to {}/releases/{}/{} failed "
                            "(exit {}): {}",
                            f.dest, config_.root, id, f.dest, r->exit_status, output_of(*r)));
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> release_host::run_hooks(
    std::string hook_name, const std::vector<std::string>& commands, std::string dir,
    std::string id, std::string previous) {
    for (const auto& cmd : commands) {
        auto r = co_await sh(scripts::hook(config_, dir, id, previous, cmd), hook_timeout);
        if (!r) co_return tl::unexpected(r.error());
        if (r->exit_status != 0)
            co_return core::fail(
                core::errc::io_error,
                fmt::format("hook {} `{}` exited with {}: {}", hook_name, core::log_text(cmd, 120),
                            r->exit_status, output_of(*r)));
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> release_host::switch_to(std::string id,
                                                            std::string previous_to_record) {
    auto r = co_await sh(scripts::switch_to(config_, id, previous_to_record), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0 || r->out.find("SWITCHED") == std::string::npos)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("switching {}/current to {} failed (exit {}): {}", config_.root,
                        id.empty() ? "nothing" : id, r->exit_status, output_of(*r)));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> release_host::restart_unit() {
    if (!config_.unit) co_return core::result<void>{};
    co_return co_await restart_unit(*config_.unit);
}

asio::awaitable<core::result<void>> release_host::restart_unit(std::string unit) {
    auto c = config_;
    c.unit = unit;
    auto r = co_await sh(scripts::restart_unit(c), config_.unit_timeout + step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("{} did not become active within {} after its restart: {}", unit,
                        core::format_duration(config_.unit_timeout), output_of(*r)));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> release_host::check_one(const health_check& h,
                                                            const std::string& dir,
                                                            const std::string& env) {
    const auto started = std::chrono::steady_clock::now();
    const auto script =
        h.http ? scripts::http_attempt(h) : scripts::command_attempt(config_, h, dir, env);
    std::string last = "no answer yet";
    unsigned attempts = 0;
    auto executor = co_await asio::this_coro::executor;
    for (;;) {
        ++attempts;
        auto r = co_await sh(script, h.timeout + std::chrono::seconds(10));
        if (!r) co_return tl::unexpected(r.error());
        bool ok = false;
        if (h.http) {
            if (r->exit_status == 5)
                co_return core::fail(core::errc::not_found,
                                     fmt::format("health check {}: {}", h.label(), output_of(*r)));
            if (r->exit_status != 0) {
                last = output_of(*r);
            } else {
                auto nl = r->out.find('\n');
                auto head = r->out.substr(0, nl);
                auto body = nl == std::string::npos ? std::string() : r->out.substr(nl + 1);
                int status = 0;
                double secs = 0;
                std::sscanf(head.c_str(), "STATUS %d %lf", &status, &secs);
                auto latency = std::chrono::milliseconds(static_cast<long long>(secs * 1000));
                ok = status == h.status && (!h.body || body.find(*h.body) != std::string::npos) &&
                     (!h.max_latency || latency <= *h.max_latency);
                last = fmt::format("status {} in {}, body \"{}\"", status,
                                   core::format_duration(latency), core::log_text(body, 120));
            }
        } else {
            ok = r->exit_status == 0;
            last = fmt::format("exit {}{}{}", r->exit_status, r->out.empty() ? "" : ": ",
                               last_lines(r->out, 200));
        }
        if (ok) co_return core::result<void>{};
        const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        if (waited + h.interval > h.timeout)
            co_return core::fail(
                core::errc::timeout,
                fmt::format("health check {} failed: waited {} ({} attempt{}); last answer: {}",
                            h.label(), core::format_duration(waited), attempts,
                            attempts == 1 ? "" : "s", last));
        asio::steady_timer pause(executor, h.interval);
        co_await pause.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<core::result<void>> release_host::check_health() {
    co_return co_await check_health(config_.health, "current", "");
}

asio::awaitable<core::result<void>> release_host::check_health(std::vector<health_check> checks,
                                                               std::string dir, std::string env) {
    for (const auto& h : checks) {
        auto r = co_await check_one(h, dir, env);
        if (!r) co_return r;
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<std::vector<std::string>>> release_host::prune() {
    auto r = co_await sh(scripts::prune(config_), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    co_return lines_with(r->out, "PRUNED");
}

asio::awaitable<void> release_host::discard(std::string id) {
    auto r = co_await sh(scripts::discard(config_, id), step_timeout);
    (void)r;
}

asio::awaitable<core::result<void>> release_host::append_log(const nlohmann::json& entry) {
    auto line = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto r = co_await sh(scripts::append_log(config_, line), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0)
        co_return core::fail(core::errc::io_error,
                             fmt::format("writing the release log failed: {}", output_of(*r)));
    co_return core::result<void>{};
}

}  // namespace tunnel::deploy
