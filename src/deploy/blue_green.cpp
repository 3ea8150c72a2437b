#include "deploy/blue_green.hpp"

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "core/shell_quote.hpp"

namespace tunnel::deploy::blue_green {

using core::shell_quote;

namespace {

constexpr std::chrono::milliseconds step_timeout{std::chrono::minutes(2)};

const blue_green_options& options(const release_host& h) {
    return h.config().strategy.blue_green;
}

std::string prologue(const deploy_config& c) {
    return fmt::format(
        "PATH=\"$PATH:/usr/sbin:/sbin\"; export PATH\nR={}\nS=\"$R/.tunnel-deploy\"\n"
        "SUDO=\"\"; [ \"$(id -u)\" = 0 ] || SUDO=\"sudo -n\"\n",
        shell_quote(c.root));
}

std::string output_of(const transfer::command_output& r) {
    std::string_view text = r.err.empty() ? r.out : r.err;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    if (text.size() > 300) text = text.substr(text.size() - 300);
    return core::log_text(text, 300);
}

std::string slot_of(const host_state& st, const std::string& slot) {
    auto it = st.slots.find(slot);
    return it == st.slots.end() ? std::string() : it->second;
}

// Points slots/<slot> at releases/<id> atomically; empty id removes it.
std::string point_slot_script(const deploy_config& c, std::string_view slot, std::string_view id) {
    return prologue(c) + fmt::format(R"SH(set -e
SL={}
ID={}
cd "$R"
mkdir -p slots
if [ -z "$ID" ]; then
  rm -f "slots/$SL"
else
  if [ ! -d "releases/$ID" ]; then echo "release $ID is not on this host (see tunnel releases)" >&2; exit 3; fi
  T="slots/.$SL.$$"
  rm -f "$T"
  ln -s "$R/releases/$ID" "$T"
  mv -T "$T" "slots/$SL"
fi
echo POINTED
)SH",
                                     shell_quote(slot), shell_quote(id));
}

// Writes the upstream file for `slot` (empty: as it was before the first
// switch), reloads, flips `current` to `id` (empty: removes it), records the
// live slot and the previous release. A failed reload puts the file back.
std::string switch_script(const deploy_config& c, std::string_view slot, std::string_view id,
                          std::string_view previous_to_record) {
    const auto& bg = c.strategy.blue_green;
    auto s = prologue(c) + fmt::format("set -e\nSL={}\nID={}\nOLD={}\ncd \"$R\"\nmkdir -p \"$S\"\n",
                                       shell_quote(slot), shell_quote(id),
                                       shell_quote(previous_to_record));
    if (bg.upstream) {
        const auto& u = *bg.upstream;
        s += fmt::format("F={}\n", shell_quote(u.file));
        s +=
            R"SH(W=""; if [ -w "$(dirname "$F")" ] && { [ ! -e "$F" ] || [ -w "$F" ]; }; then W=""; else W="$SUDO"; fi
put() {
  if [ -e "$1" ]; then $W cp "$1" "$F.tunnel-new" && $W mv -f "$F.tunnel-new" "$F"; else $W rm -f "$F"; fi
}
if [ -n "$SL" ] && [ ! -s "$S/live-slot" ]; then
  if [ -e "$F" ]; then cp "$F" "$S/upstream.orig"; else rm -f "$S/upstream.orig"; fi
fi
if [ -e "$F" ]; then cp "$F" "$S/upstream.before"; else rm -f "$S/upstream.before"; fi
)SH";
        if (slot.empty())
            s +=
                "if [ -e \"$S/upstream.orig\" ]; then cp \"$S/upstream.orig\" \"$S/upstream.new\"; "
                "else rm -f \"$S/upstream.new\"; fi\n";
        else
            s += fmt::format("printf '%s\\n' {} > \"$S/upstream.new\"\n",
                             shell_quote(render_slot(u.template_text, slot, bg.slot(slot))));
        s += "put \"$S/upstream.new\" || { echo \"cannot write $F\" >&2; exit 3; }\n";
        if (u.reload)
            s += fmt::format(R"SH(if ! out=$( (cd "$R" && {}
) 2>&1 ); then
  put "$S/upstream.before" || true
  (cd "$R" && {}
) >/dev/null 2>&1 || true
  printf '%s\n' "$out" | tail -c 300 >&2
  exit 4
fi
)SH",
                             *u.reload, *u.reload);
    }
    s += R"SH(if [ -n "$ID" ]; then
  T=".current.$$"
  rm -f "$T"
  ln -s "$R/releases/$ID" "$T"
  mv -T "$T" current
else
  rm -f current
fi
if [ -n "$SL" ]; then printf '%s\n' "$SL" > "$S/live-slot.new" && mv "$S/live-slot.new" "$S/live-slot"; else rm -f "$S/live-slot"; fi
if [ -n "$OLD" ] && [ "$OLD" != "$ID" ]; then printf '%s\n' "$OLD" > "$S/previous"; fi
echo SWITCHED
)SH";
    return s;
}

std::string stop_unit_script(const deploy_config& c, std::string_view unit) {
    return prologue(c) + fmt::format("$SUDO systemctl stop {}\n", shell_quote(unit));
}

asio::awaitable<core::result<void>> point_slot(release_host& h, std::string slot, std::string id) {
    auto r = co_await h.run_script(point_slot_script(h.config(), slot, id), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status != 0 || r->out.find("POINTED") == std::string::npos)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("pointing slot {} at {} failed (exit {}): {}", slot,
                        id.empty() ? "nothing" : id, r->exit_status, output_of(*r)));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> switch_traffic(release_host& h, std::string slot,
                                                   std::string id, std::string previous) {
    auto r = co_await h.run_script(switch_script(h.config(), slot, id, previous), step_timeout);
    if (!r) co_return tl::unexpected(r.error());
    if (r->exit_status == 0 && r->out.find("SWITCHED") != std::string::npos)
        co_return core::result<void>{};
    const auto& u = options(h).upstream;
    const auto to = slot.empty() ? std::string("no slot") : "slot " + slot;
    auto out = output_of(*r);
    if (r->exit_status == 4 && u && u->reload)
        co_return core::fail(core::errc::io_error,
                             fmt::format("switching traffic to {}: reload `{}` failed: {}; {} was "
                                         "put back and traffic stays where it was",
                                         to, core::log_text(*u->reload, 120),
                                         out.empty() ? "(no output)" : out, u->file));
    co_return core::fail(core::errc::io_error,
                         fmt::format("switching traffic to {} failed (exit {}): {}", to,
                                     r->exit_status, output_of(*r)));
}

// The health checks for `slot`: {{slot}}/{{port}} replaced, command checks in
// slots/<slot> with DEPLOY_SLOT and DEPLOY_PORT set.
asio::awaitable<core::result<void>> check_slot(release_host& h, std::string slot) {
    const auto& sc = options(h).slot(slot);
    auto checks = h.config().health;
    for (auto& c : checks) {
        if (c.http) c.http = render_slot(*c.http, slot, sc);
        if (c.command) c.command = render_slot(*c.command, slot, sc);
    }
    auto env = fmt::format("DEPLOY_SLOT={}; DEPLOY_PORT={}; export DEPLOY_SLOT DEPLOY_PORT",
                           shell_quote(slot), sc.port ? std::to_string(*sc.port) : "''");
    auto dir = "slots/" + slot;  // named, not a temporary in the co_await (g++ 12 trap)
    co_return co_await h.check_health(std::move(checks), std::move(dir), std::move(env));
}

// Puts `slot` back on `release` (its unit restarted) or, with none, empties
// it (its unit stopped). Best effort: the problem, or "".
asio::awaitable<std::string> restore_slot(release_host& h, std::string slot, std::string release) {
    auto p = co_await point_slot(h, slot, release);
    if (!p) co_return p.error().message;
    const auto& unit = options(h).slot(slot).unit;
    if (!unit) co_return std::string();
    if (release.empty()) {
        auto r = co_await h.run_script(stop_unit_script(h.config(), *unit), step_timeout);
        (void)r;
        co_return std::string();
    }
    auto u = co_await h.restart_unit(*unit);
    co_return u ? std::string() : u.error().message;
}

// A failed step before the switch: the slot back as it was, the error kept.
asio::awaitable<step> undo(release_host& h, const host_state& st, step s, core::error e) {
    const auto prior = slot_of(st, s.slot);
    auto problem = co_await restore_slot(h, s.slot, prior);
    e.message += problem.empty()
                     ? fmt::format("; slot {} put back on {}", s.slot,
                                   prior.empty() ? std::string("nothing") : prior)
                     : fmt::format("; putting slot {} back FAILED: {}", s.slot, problem);
    s.result = tl::unexpected(std::move(e));
    co_return s;
}

}  // namespace

std::string target_slot(const host_state& st) {
    return st.live_slot.empty() ? std::string("blue") : std::string(other_slot(st.live_slot));
}

std::string describe_plan(const deploy_config& c, const host_state& st, const std::string& id) {
    const auto slot = target_slot(st);
    const auto& bg = c.strategy.blue_green;
    const auto& sc = bg.slot(slot);
    std::string detail;
    if (sc.unit) detail += *sc.unit;
    if (sc.port) detail += (detail.empty() ? "port " : ", port ") + std::to_string(*sc.port);
    auto s = fmt::format("start {} in slot {}{}, check its health, then switch traffic {} -> {}",
                         id, slot, detail.empty() ? "" : " (" + detail + ")",
                         st.live_slot.empty() ? "(no slot)" : st.live_slot, slot);
    if (bg.upstream)
        s += fmt::format(" (write {}{})", bg.upstream->file,
                         bg.upstream->reload ? ", reload: " + *bg.upstream->reload : "");
    s += fmt::format("; current {} -> {}", st.current.empty() ? "(no release)" : st.current, id);
    return s;
}

std::string slot_marks(const host_state& st, const std::string& id) {
    std::string s;
    for (const auto& [slot, release] : st.slots)
        if (release == id) s += fmt::format(" [{}{}]", slot, slot == st.live_slot ? ", live" : "");
    return s;
}

asio::awaitable<step> deploy(release_host& h, const host_state& st, std::string id, bool hooks) {
    step s;
    s.slot = target_slot(st);
    const auto& c = h.config();
    if (hooks) {
        const auto release_dir = c.root + "/releases/" + id;
        auto before = co_await h.run_hooks("before_switch", c.hooks.before_switch, release_dir, id,
                                           st.current);
        if (!before) {
            s.result = tl::unexpected(before.error());
            co_return s;
        }
    }
    if (auto p = co_await point_slot(h, s.slot, id); !p) {
        s.result = tl::unexpected(p.error());
        co_return s;
    }
    if (const auto& unit = options(h).slot(s.slot).unit) {
        if (auto u = co_await h.restart_unit(*unit); !u) {
            auto e = u.error();
            co_return co_await undo(h, st, std::move(s), std::move(e));
        }
    }
    if (auto ok = co_await check_slot(h, s.slot); !ok) {
        auto e = ok.error();
        e.message = fmt::format("slot {}: {}; traffic stays on {}", s.slot, e.message,
                                st.live_slot.empty() ? std::string("no slot") : st.live_slot);
        co_return co_await undo(h, st, std::move(s), std::move(e));
    }
    if (auto sw = co_await switch_traffic(h, s.slot, id, st.current); !sw) {
        auto e = sw.error();
        co_return co_await undo(h, st, std::move(s), std::move(e));
    }
    s.switched = true;
    if (hooks) {
        const auto current_dir = c.root + "/current";
        auto after =
            co_await h.run_hooks("after_switch", c.hooks.after_switch, current_dir, id, st.current);
        if (!after) s.result = tl::unexpected(after.error());
    }
    co_return s;
}

asio::awaitable<core::result<void>> switch_back(release_host& h, const host_state& st,
                                                std::string slot) {
    auto sw = co_await switch_traffic(h, st.live_slot, st.current, st.previous);
    if (!sw) co_return sw;
    auto problem = co_await restore_slot(h, slot, slot_of(st, slot));
    if (!problem.empty())
        co_return core::fail(
            core::errc::io_error,
            fmt::format("traffic is back on {}, but putting slot {} back "
                        "failed: {}",
                        st.live_slot.empty() ? "no slot" : st.live_slot, slot, problem));
    co_return core::result<void>{};
}

asio::awaitable<step> rollback(release_host& h, const host_state& st, std::string target) {
    const auto idle = target_slot(st);
    if (st.live_slot.empty() || slot_of(st, idle) != target) {
        auto s = co_await deploy(h, st, std::move(target), false);
        co_return s;
    }
    // The idle slot is warm on the target: check it, then flip (no restart).
    step s;
    s.slot = idle;
    if (auto ok = co_await check_slot(h, idle); !ok) {
        auto e = ok.error();
        s.result = core::fail(
            e.code, fmt::format("slot {}: {}; traffic stays on {}", idle, e.message, st.live_slot));
        co_return s;
    }
    s.result = co_await switch_traffic(h, idle, target, st.current);
    s.switched = s.result.has_value();
    co_return s;
}

}  // namespace tunnel::deploy::blue_green
