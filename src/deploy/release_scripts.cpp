#include "deploy/release_scripts.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include "core/shell_quote.hpp"

namespace tunnel::deploy::scripts {

using core::shell_quote;

namespace {

// Every script starts from the same variables: R (root), S (state dir).
std::string prologue(const deploy_config& c) {
    return fmt::format(
        "PATH=\"$PATH:/usr/sbin:/sbin\"; export PATH\nR={}\nS=\"$R/.tunnel-deploy\"\n",
        shell_quote(c.root));
}

std::string trim_slashes(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
}

// A shared path is a directory when written with a trailing '/', or when its
// last component has no '.' (log, tmp/pids); otherwise a file (.env, config/db.yml).
bool shared_is_directory(std::string_view p) {
    if (!p.empty() && p.back() == '/') return true;
    auto base = p.substr(p.rfind('/') == std::string_view::npos ? 0 : p.rfind('/') + 1);
    return base.find('.') == std::string_view::npos;
}

std::string extension_for(artifact_kind k) {
    switch (k) {
        case artifact_kind::tar_gz:
            return ".tar.gz";
        case artifact_kind::zip:
            return ".zip";
        default:
            return "";
    }
}

}  // namespace

std::string artifact_path(const deploy_config& c, const artifact& a) {
    if (a.kind == artifact_kind::directory) return c.root + "/.tunnel-deploy/cache/" + c.app;
    return c.root + "/.tunnel-deploy/artifacts/" + c.app + extension_for(a.kind);
}

std::string lock(const deploy_config& c, std::string_view holder_json) {
    return prologue(c) + fmt::format(R"SH(set -e
mkdir -p "$R/releases" "$R/shared" "$S/artifacts" "$S/cache"
if mkdir "$S/lock" 2>/dev/null; then
  printf '%s\n' {} > "$S/lock/holder"
  echo LOCKED
else
  echo HELD
  cat "$S/lock/holder" 2>/dev/null || echo '{{}}'
fi
)SH",
                                     shell_quote(holder_json));
}

std::string unlock(const deploy_config& c, std::string_view holder_json) {
    return prologue(c) + fmt::format(R"SH(h=$(cat "$S/lock/holder" 2>/dev/null || true)
if [ "$h" = {} ]; then rm -rf "$S/lock"; fi
)SH",
                                     shell_quote(holder_json));
}

std::string force_unlock(const deploy_config& c) {
    return prologue(c) + R"SH(if [ -d "$S/lock" ]; then
  printf 'HELD %s\n' "$(cat "$S/lock/holder" 2>/dev/null || echo '{}')"
  rm -rf "$S/lock"
else
  echo FREE
fi
)SH";
}

std::string read_state(const deploy_config& c, unsigned log_lines) {
    auto s = prologue(c) + R"SH(cd "$R" 2>/dev/null || { echo NOROOT; exit 0; }
c=$(readlink current 2>/dev/null || true)
echo "CURRENT ${c##*/}"
echo "PREVIOUS $(cat "$S/previous" 2>/dev/null || true)"
for s in slots/*; do
  l=$(readlink "$s" 2>/dev/null) || continue
  echo "SLOT ${s##*/} ${l##*/}"
done
echo "LIVE $(cat "$S/live-slot" 2>/dev/null || true)"
for d in releases/*/; do
  [ -d "$d" ] || continue
  d=${d%/}; echo "RELEASE ${d##*/}"
done
)SH";
    if (log_lines > 0)
        s += fmt::format("tail -n {} \"$S/log.jsonl\" 2>/dev/null | sed 's/^/LOG /'\n", log_lines);
    s += "exit 0\n";
    return s;
}

std::string unpack(const deploy_config& c, const artifact& a, std::string_view id) {
    auto s = prologue(c) + fmt::format(R"SH(set -e
ID={}
A={}
P="$R/releases/.$ID.partial"
D="$R/releases/$ID"
if [ -e "$D" ]; then echo "release $ID already exists in $R/releases" >&2; exit 3; fi
rm -rf "$R"/releases/.*.partial
mkdir -p "$P"
)SH",
                                       shell_quote(id), shell_quote(artifact_path(c, a)));
    switch (a.kind) {
        case artifact_kind::tar_gz:
            s += "tar -xzf \"$A\" -C \"$P\"\n";
            break;
        case artifact_kind::zip:
            s += "command -v unzip >/dev/null || { echo 'unzip is not installed on this host "
                 "(install it, or ship a .tar.gz)' >&2; exit 3; }\nunzip -q \"$A\" -d \"$P\"\n";
            break;
        case artifact_kind::directory:
            s += "cp -a \"$A/.\" \"$P/\"\n";
            break;
        case artifact_kind::binary:
            s += fmt::format("cp \"$A\" \"$P\"/{0}\nchmod 755 \"$P\"/{0}\n",
                             shell_quote(a.file_name));
            break;
    }
    for (const auto& raw : c.shared) {
        auto p = trim_slashes(raw);
        s += fmt::format(R"SH(p={}
t="$R/shared/$p"
if [ ! -e "$t" ] && [ ! -L "$t" ]; then
  mkdir -p "$(dirname "$t")"
  if [ -e "$P/$p" ]; then cp -a "$P/$p" "$t"; else {}; fi
fi
rm -rf "$P/$p"
mkdir -p "$(dirname "$P/$p")"
ln -s "$t" "$P/$p"
)SH",
                         shell_quote(p),
                         shared_is_directory(raw) ? "mkdir -p \"$t\"" : ": > \"$t\"");
    }
    s += "mv \"$P\" \"$D\"\necho UNPACKED\n";
    return s;
}

std::string switch_to(const deploy_config& c, std::string_view id,
                      std::string_view previous_to_record) {
    auto s = prologue(c) + fmt::format("set -e\nID={}\nOLD={}\ncd \"$R\"\n", shell_quote(id),
                                       shell_quote(previous_to_record));
    if (id.empty()) {
        s += "rm -f current\n";
    } else {
        s +=
            R"SH(if [ ! -d "releases/$ID" ]; then echo "release $ID is not on this host (see tunnel releases)" >&2; exit 3; fi
T=".current.$$"
rm -f "$T"
ln -s "$R/releases/$ID" "$T"
mv -T "$T" current
)SH";
    }
    s += "if [ -n \"$OLD\" ] && [ \"$OLD\" != \"$ID\" ]; then printf '%s\\n' \"$OLD\" > "
         "\"$S/previous\"; fi\necho SWITCHED\n";
    return s;
}

std::string restart_unit(const deploy_config& c) {
    auto polls = std::max<long long>(1, c.unit_timeout.count() / 250);
    return prologue(c) + fmt::format(R"SH(U={}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
$SUDO systemctl restart "$U" || exit 3
i=0
while [ $i -lt {} ]; do
  st=$(systemctl is-active "$U" 2>/dev/null || true)
  [ "$st" = active ] && {{ echo ACTIVE; exit 0; }}
  [ "$st" = failed ] && break
  sleep 0.25; i=$((i+1))
done
echo "unit $U is $(systemctl is-active "$U" 2>/dev/null || true)"
systemctl status "$U" --no-pager -n 5 2>&1 | tail -n 5
exit 4
)SH",
                                     shell_quote(*c.unit), polls);
}

std::string hook(const deploy_config& c, std::string_view dir, std::string_view id,
                 std::string_view previous, std::string_view command) {
    return prologue(c) + fmt::format(
                             "cd {} || exit 3\nDEPLOY_APP={} DEPLOY_ROOT=\"$R\" DEPLOY_RELEASE={} "
                             "DEPLOY_RELEASE_DIR=\"$R/releases/\"{} DEPLOY_PREVIOUS={}\nexport "
                             "DEPLOY_APP DEPLOY_ROOT DEPLOY_RELEASE DEPLOY_RELEASE_DIR "
                             "DEPLOY_PREVIOUS\n{}\n",
                             shell_quote(dir), shell_quote(c.app), shell_quote(id), shell_quote(id),
                             shell_quote(previous), command);
}

std::string http_attempt(const health_check& h) {
    auto secs = std::max<double>(1.0, static_cast<double>(h.timeout.count()) / 1000.0);
    return fmt::format(
        R"SH(command -v curl >/dev/null || {{ echo 'curl is not installed on this host (install it, or use a command check)'; exit 5; }}
B=$(mktemp) || exit 5
w=$(curl -sS -o "$B" -w '%{{http_code}} %{{time_total}}' --max-time {:.0f} {} 2>&1) || {{ echo "$w" | tail -n 1; rm -f "$B"; exit 6; }}
echo "STATUS $w"
head -c 4096 "$B"
rm -f "$B"
)SH",
        std::min(secs, 30.0), shell_quote(*h.http));
}

std::string command_attempt(const deploy_config& c, const health_check& h, std::string_view dir,
                            std::string_view env) {
    return prologue(c) + fmt::format(
                             "DEPLOY_ROOT=\"$R\"; export DEPLOY_ROOT\n{}\ncd \"$R\"/{} || exit "
                             "3\nout=$( ( {}\n) 2>&1 )\nrc=$?\nprintf '%s' "
                             "\"$out\" | tail -c 4096\nexit $rc\n",
                             env, shell_quote(dir), *h.command);
}

std::string prune(const deploy_config& c) {
    return prologue(c) + fmt::format(R"SH(cd "$R/releases" || exit 0
cur=$(readlink "$R/current" 2>/dev/null || true); cur=${{cur##*/}}
prev=$(cat "$S/previous" 2>/dev/null || true)
n=0
for d in $(ls -1 | sort -r); do
  [ -d "$d" ] || continue
  n=$((n+1))
  [ $n -le {} ] && continue
  [ "$d" = "$cur" ] && continue
  [ "$d" = "$prev" ] && continue
  for s in "$R"/slots/*; do
    l=$(readlink "$s" 2>/dev/null) && [ "${{l##*/}}" = "$d" ] && continue 2
  done
  rm -rf "./$d" && echo "PRUNED $d"
done
exit 0
)SH",
                                     c.keep_releases);
}

std::string append_log(const deploy_config& c, std::string_view json_line) {
    return prologue(c) + fmt::format("mkdir -p \"$S\" && printf '%s\\n' {} >> \"$S/log.jsonl\"\n",
                                     shell_quote(json_line));
}

std::string discard(const deploy_config& c, std::string_view id) {
    return prologue(c) + fmt::format(R"SH(ID={}
c=$(readlink "$R/current" 2>/dev/null || true)
[ "${{c##*/}}" = "$ID" ] || rm -rf "$R/releases/$ID"
exit 0
)SH",
                                     shell_quote(id));
}

std::string new_release_id() {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
    return fmt::format("{}-{:03d}", buf, static_cast<int>(ms.count()));
}

bool valid_release_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= 100 && id.front() != '.' &&
           std::all_of(id.begin(), id.end(), [](char ch) {
               return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                      ch == '-';
           });
}

}  // namespace tunnel::deploy::scripts
