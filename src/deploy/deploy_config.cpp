#include "deploy/deploy_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_config.hpp"
#include "deploy/deploy_templates.hpp"

namespace tunnel::deploy {

std::string_view to_string(artifact_kind k) noexcept {
    switch (k) {
        case artifact_kind::tar_gz:
            return "tar.gz";
        case artifact_kind::zip:
            return "zip";
        case artifact_kind::directory:
            return "directory";
        case artifact_kind::binary:
            return "binary";
    }
    return "?";
}

std::string_view to_string(strategy_type t) noexcept {
    switch (t) {
        case strategy_type::recreate:
            return "recreate";
        case strategy_type::rolling:
            return "rolling";
        case strategy_type::canary:
            return "canary";
        case strategy_type::blue_green:
            return "blue_green";
    }
    return "?";
}

std::string health_check::label() const {
    return http ? "http " + *http : "command " + command.value_or("");
}

std::size_t batch_size::for_hosts(std::size_t hosts) const noexcept {
    std::size_t n = percent ? (hosts * value + 99) / 100 : value;  // a % rounds up
    return std::clamp<std::size_t>(n, 1, std::max<std::size_t>(hosts, 1));
}

namespace {

using core::line_of;

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// A path inside a release: relative, no "..", no NUL or newline.
bool safe_relative(std::string_view p) {
    if (p.empty() || p.front() == '/' || p.find('\0') != std::string_view::npos ||
        p.find('\n') != std::string_view::npos)
        return false;
    std::size_t pos = 0;
    while (pos <= p.size()) {
        auto slash = p.find('/', pos);
        auto part = p.substr(pos, slash == std::string_view::npos ? p.npos : slash - pos);
        if (part == ".." || part == ".") return false;
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return true;
}

bool safe_name(std::string_view s) {
    return !s.empty() && s.front() != '-' && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == '@' || c == ':';
    });
}

std::vector<std::string> read_commands(core::yaml_reader& r, const YAML::Node& n,
                                       const std::string& path) {
    if (n.IsScalar()) {
        auto s = r.string(n, path);
        return s ? std::vector<std::string>{*s} : std::vector<std::string>{};
    }
    return r.string_list(n, path).value_or(std::vector<std::string>{});
}

void read_hooks(core::yaml_reader& r, const YAML::Node& n, hooks& h) {
    if (!r.expect_map(n, "hooks",
                      {"before_upload", "after_upload", "before_switch", "after_switch",
                       "after_success", "after_failure"}))
        return;
    std::pair<const char*, std::vector<std::string>*> slots[] = {
        {"before_upload", &h.before_upload}, {"after_upload", &h.after_upload},
        {"before_switch", &h.before_switch}, {"after_switch", &h.after_switch},
        {"after_success", &h.after_success}, {"after_failure", &h.after_failure}};
    for (auto& [key, out] : slots)
        if (n[key]) *out = read_commands(r, n[key], std::string("hooks.") + key);
}

void read_health(core::yaml_reader& r, const YAML::Node& n, std::vector<health_check>& out) {
    if (!n.IsSequence()) {
        r.error("health",
                "must be a list of checks, e.g. [{http: \"http://127.0.0.1:8000/up\"}, "
                "{command: \"systemctl is-active shop\"}]" +
                    line_of(n));
        return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
        const auto& c = n[i];
        auto path = fmt::format("health[{}]", i);
        if (!r.expect_map(
                c, path, {"http", "command", "status", "body", "latency", "timeout", "interval"})) {
            if (!c || c.IsNull()) r.error(path, "must be {http: URL, ...} or {command: CMD}");
            continue;
        }
        health_check h;
        if (c["http"] && c["command"]) {
            r.error(path, "has both http and command: use one check per list entry" + line_of(c));
            continue;
        }
        if (c["http"]) {
            h.http = r.string(c["http"], path + ".http");
            if (h.http && h.http->rfind("http://", 0) != 0 && h.http->rfind("https://", 0) != 0)
                r.error(path + ".http", "must be an http:// or https:// URL" + line_of(c["http"]));
        } else if (c["command"]) {
            h.command = r.string(c["command"], path + ".command");
        } else {
            r.error(path, "needs http: URL or command: CMD" + line_of(c));
            continue;
        }
        if (h.command) {
            for (auto key : {"status", "body", "latency"})
                if (c[key])
                    r.error(path + "." + key,
                            "applies to http checks only (a command check passes on exit 0)" +
                                line_of(c[key]));
        }
        if (c["status"])
            h.status =
                static_cast<int>(r.integer(c["status"], path + ".status", 100, 599).value_or(200));
        if (c["body"]) h.body = r.string(c["body"], path + ".body");
        if (c["latency"]) h.max_latency = r.duration(c["latency"], path + ".latency");
        if (c["timeout"])
            h.timeout = r.duration(c["timeout"], path + ".timeout").value_or(h.timeout);
        if (c["interval"])
            h.interval = r.duration(c["interval"], path + ".interval").value_or(h.interval);
        if (h.timeout > std::chrono::hours(1))
            r.error(path + ".timeout", "must be at most 1h" + line_of(c["timeout"]));
        if (h.interval < std::chrono::milliseconds(100))
            r.error(path + ".interval", "must be at least 100ms" + line_of(c["interval"]));
        out.push_back(std::move(h));
    }
}

void read_strategy(core::yaml_reader& r, const YAML::Node& n, strategy& s) {
    if (n.IsScalar()) {  // `strategy: rolling`
        auto t = n.as<std::string>();
        YAML::Node m;
        m["type"] = t;
        read_strategy(r, m, s);
        return;
    }
    if (!r.expect_map(n, "strategy",
                      {"type", "batch", "max_fail_percentage", "wait", "slots", "upstream"}))
        return;
    if (n["type"]) {
        auto t = r.string(n["type"], "strategy.type");
        if (t == "recreate")
            s.type = strategy_type::recreate;
        else if (t == "rolling")
            s.type = strategy_type::rolling;
        else if (t == "canary")
            s.type = strategy_type::canary;
        else if (t == "blue_green" || t == "blue-green")
            s.type = strategy_type::blue_green;
        else if (t)
            r.error("strategy.type", fmt::format("unknown strategy \"{}\" (one of: recreate, "
                                                 "rolling, canary, blue_green){}",
                                                 *t, line_of(n["type"])));
    }
    if (n["batch"]) {
        const auto& b = n["batch"];
        auto text = b.IsScalar() ? b.as<std::string>() : std::string();
        if (!text.empty() && text.back() == '%') {
            YAML::Node num(text.substr(0, text.size() - 1));
            unsigned long long v = 0;
            if (!YAML::convert<unsigned long long>::decode(num, v) || v < 1 || v > 100)
                r.error("strategy.batch", "a percentage must be from 1% to 100%" + line_of(b));
            else
                s.batch = {static_cast<unsigned>(v), true};
        } else if (auto v = r.integer(b, "strategy.batch", 1, 10000)) {
            s.batch = {static_cast<unsigned>(*v), false};
        }
    } else if (s.type == strategy_type::canary) {
        s.batch = {1, false};
    } else if (s.type == strategy_type::blue_green) {
        s.batch = {100, true};  // every host at once unless `batch` says otherwise
    }
    if (n["max_fail_percentage"])
        s.max_fail_percentage = static_cast<unsigned>(
            r.integer(n["max_fail_percentage"], "strategy.max_fail_percentage", 0, 100)
                .value_or(0));
    if (n["wait"]) s.canary_wait = r.duration(n["wait"], "strategy.wait").value_or(s.canary_wait);
    if (n["wait"] && s.type != strategy_type::canary)
        r.error("strategy.wait", "applies to the canary strategy only" + line_of(n["wait"]));
    read_blue_green(r, n, s);
}

}  // namespace

core::result<deploy_config> parse_deploy_config(std::string_view text, const std::string& file,
                                                const std::string& dir, bool probe_local) {
    core::yaml_reader r(file);
    auto root = r.parse(text);
    if (!r.ok()) return tl::unexpected(r.failure());
    if (!root || root.IsNull())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: the deploy file is empty (expected app:, root:, "
                                      "artifact:, ...)",
                                      file));
    if (!r.expect_map(root, "",
                      {"app", "root", "artifact", "shared", "keep_releases", "unit", "unit_timeout",
                       "hooks", "health", "strategy", "templates"}))
        return tl::unexpected(r.failure());
    deploy_config c;
    c.file = file;
    for (auto key : {"app", "root", "artifact"})
        if (!root[key]) r.error(key, "is required");
    if (root["app"]) {
        c.app = r.string(root["app"], "app").value_or("");
        if (root["app"].IsScalar() && !safe_name(c.app))
            r.error("app", "must be a name of letters, digits, '-', '_', '.' (e.g. shop)" +
                               line_of(root["app"]));
    }
    if (root["root"]) {
        c.root = r.string(root["root"], "root").value_or("");
        while (c.root.size() > 1 && c.root.back() == '/') c.root.pop_back();
        if (root["root"].IsScalar() && c.root.find("{{") == std::string::npos &&
            (c.root.empty() || c.root.front() != '/' || c.root == "/" ||
             c.root.find('\n') != std::string::npos || c.root.find("/../") != std::string::npos ||
             ends_with(c.root, "/..")))
            r.error("root", "must be an absolute directory other than / (e.g. /srv/shop)" +
                                line_of(root["root"]));
    }
    if (root["artifact"]) {
        auto a = r.string(root["artifact"], "artifact").value_or("");
        if (!a.empty()) {
            c.artifact = a.front() == '/' ? a : dir + "/" + a;
            struct stat st {};
            bool is_dir =
                probe_local && ::stat(c.artifact.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
            if (is_dir || ends_with(a, "/"))
                c.kind = artifact_kind::directory;
            else if (ends_with(a, ".tar.gz") || ends_with(a, ".tgz"))
                c.kind = artifact_kind::tar_gz;
            else if (ends_with(a, ".zip"))
                c.kind = artifact_kind::zip;
            else
                c.kind = artifact_kind::binary;
            while (c.artifact.size() > 1 && c.artifact.back() == '/') c.artifact.pop_back();
        }
    }
    if (root["shared"]) {
        if (auto list = r.string_list(root["shared"], "shared"))
            for (std::size_t i = 0; i < list->size(); ++i) {
                auto p = (*list)[i];
                auto trimmed = p;
                while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
                if (!safe_relative(trimmed))
                    r.error(fmt::format("shared[{}]", i),
                            fmt::format("\"{}\" must be a path inside the release, without "
                                        "'..' (e.g. log/ or .env){}",
                                        p, line_of(root["shared"][i])));
                else
                    c.shared.push_back(p);
            }
    }
    if (root["keep_releases"])
        c.keep_releases = static_cast<unsigned>(
            r.integer(root["keep_releases"], "keep_releases", 2, 1000).value_or(5));
    if (root["unit"]) {
        c.unit = r.string(root["unit"], "unit");
        if (c.unit && !safe_name(*c.unit))
            r.error("unit",
                    "must be a systemd unit name (e.g. shop.service)" + line_of(root["unit"]));
    }
    if (root["unit_timeout"])
        c.unit_timeout = r.duration(root["unit_timeout"], "unit_timeout").value_or(c.unit_timeout);
    if (root["hooks"]) read_hooks(r, root["hooks"], c.hooks);
    if (root["health"]) read_health(r, root["health"], c.health);
    if (root["strategy"]) read_strategy(r, root["strategy"], c.strategy);
    check_blue_green(r, root, c);
    if (root["templates"]) read_templates(r, root["templates"], dir, c);
    if (!r.ok()) return tl::unexpected(r.failure());
    return c;
}

core::result<deploy_config> load_deploy_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::not_found, fmt::format("cannot read deploy file {}", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto slash = path.rfind('/');
    return parse_deploy_config(ss.str(), path,
                               slash == std::string::npos ? "." : path.substr(0, slash));
}

namespace {
bool valid_root(const std::string& r) {
    return !r.empty() && r.front() == '/' && r != "/" && r.find('\n') == std::string::npos &&
           r.find("/../") == std::string::npos && !ends_with(r, "/..");
}
}  // namespace

core::result<std::string> root_for_host(const deploy_config& c, const std::string& host,
                                        const nlohmann::json& vars) {
    std::string out;
    std::size_t pos = 0;
    while (pos < c.root.size()) {
        auto open = c.root.find("{{", pos);
        if (open == std::string::npos) {
            out += c.root.substr(pos);
            break;
        }
        auto close = c.root.find("}}", open);
        if (close == std::string::npos)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("{}: root: \"{{{{\" without \"}}}}\" in {}", c.file, c.root));
        out += c.root.substr(pos, open - pos);
        auto name = c.root.substr(open + 2, close - open - 2);
        name.erase(0, name.find_first_not_of(' '));
        name.erase(name.find_last_not_of(' ') + 1);
        if (name == "inventory_hostname") {
            out += host;
        } else if (vars.is_object() && vars.contains(name) &&
                   (vars[name].is_string() || vars[name].is_number())) {
            out += vars[name].is_string() ? vars[name].get<std::string>() : vars[name].dump();
        } else {
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{}: root: host {} has no variable {} (set it in the "
                                          "inventory, e.g. {} {}=/srv/app)",
                                          c.file, host, name, host, name));
        }
        pos = close + 2;
    }
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    if (!valid_root(out))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: root for host {} is \"{}\": it must be an absolute "
                                      "directory other than /",
                                      c.file, host, out));
    return out;
}

std::vector<std::vector<std::size_t>> plan_batches(const strategy& s, std::size_t hosts) {
    std::vector<std::vector<std::size_t>> out;
    if (hosts == 0) return out;
    std::size_t size = s.type == strategy_type::recreate ? hosts : s.batch.for_hosts(hosts);
    std::size_t i = 0;
    while (i < hosts) {
        std::size_t n = std::min(size, hosts - i);
        // canary: the first batch, then every other host at once.
        if (s.type == strategy_type::canary && !out.empty()) n = hosts - i;
        std::vector<std::size_t> b;
        for (std::size_t k = 0; k < n; ++k) b.push_back(i + k);
        out.push_back(std::move(b));
        i += n;
    }
    return out;
}

bool exceeds_max_fail(unsigned max_fail_percentage, std::size_t failed,
                      std::size_t total) noexcept {
    if (total == 0) return false;
    return failed * 100 > static_cast<std::size_t>(max_fail_percentage) * total;
}

}  // namespace tunnel::deploy
