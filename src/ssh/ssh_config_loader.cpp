// Loading ssh_config: reading files (-F, ~/.ssh/config, the system file),
// Include with globs and a depth limit, IgnoreUnknown, and `-o` overrides.
// Every value is validated here, even inside blocks that match no host.
#include <glob.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ssh/ssh_config.hpp"
#include "ssh/ssh_config_keywords.hpp"
#include "ssh/ssh_config_match.hpp"
#include "ssh/ssh_config_syntax.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;
using entry = ssh_config::entry;
using config_keywords::apply_option;
using config_keywords::at;
using config_match::match_pattern_list;
using config_match::parse_match;
using namespace config_syntax;

constexpr int max_include_depth = 16;  // OpenSSH's READCONF_MAX_DEPTH

struct loader {
    const resolve_context& ctx;
    std::string include_base;  // where relative Includes live
    std::vector<entry>& out;
    std::vector<std::string> ignore_unknown;  // IgnoreUnknown patterns seen so far

    core::result<void> parse_text(std::string_view text, const std::string& name, int depth) {
        int line_no = 0;
        std::size_t pos = 0;
        while (pos <= text.size()) {
            auto nl = text.find('\n', pos);
            if (nl == std::string_view::npos) nl = text.size();
            std::string_view line = text.substr(pos, nl - pos);
            pos = nl + 1;
            ++line_no;
            if (auto r = parse_line(line, name + ":" + std::to_string(line_no), depth); !r)
                return r;
            if (nl == text.size()) break;
        }
        return {};
    }

    core::result<void> parse_line(std::string_view line, const std::string& origin, int depth) {
        auto split = split_config_line(line);
        if (!split) return tl::unexpected(at(origin, split.error()));
        if (!*split) return {};
        auto& [keyword, args, raw] = **split;

        const keyword_info* k = find_keyword(keyword);
        if (!k) {
            for (const auto& pat : ignore_unknown)
                if (match_pattern_list(keyword, pat, true)) return {};
            return fail(errc::invalid_argument,
                        origin + ": Bad configuration option " + quoted_config_value(keyword) +
                            ": not an ssh_config keyword (check the spelling, or add "
                            "'IgnoreUnknown " +
                            keyword + "' before it to skip it)");
        }
        switch (k->id) {
            case k_host: {
                // Like OpenSSH, Host patterns are separated by whitespace only:
                // `Host a,b` is one pattern that no real host name matches
                // (`ssh -G` agrees). Match criteria take comma lists.
                entry e{entry::kind::host, k_host, {}, origin};
                for (const auto& a : args)
                    if (!a.empty() && a != "!") e.args.push_back(a);
                if (e.args.empty())
                    return fail(
                        errc::invalid_argument,
                        origin + ": Host needs at least one pattern, e.g. Host *.example.com");
                out.push_back(std::move(e));
                return {};
            }
            case k_match: {
                auto criteria = parse_match(args);
                if (!criteria) return tl::unexpected(at(origin, criteria.error()));
                out.push_back(entry{entry::kind::match, k_match, std::move(*criteria), origin});
                return {};
            }
            case k_include:
                return include(args, origin, depth);
            case k_ignore_unknown:
                for (const auto& a : args) ignore_unknown.push_back(a);
                break;
            default:
                break;
        }
        std::vector<std::string> values =
            k->id == k_proxy_command ? std::vector<std::string>{raw} : std::move(args);
        if (values.empty())
            return fail(errc::invalid_argument,
                        origin + ": " + std::string(k->name) + " is missing its value");
        if (auto r = apply_option(k->id, values, nullptr); !r)
            return tl::unexpected(at(origin, r.error()));
        out.push_back(entry{entry::kind::option, k->id, std::move(values), origin});
        return {};
    }

    core::result<void> include(const std::vector<std::string>& args, const std::string& origin,
                               int depth) {
        if (args.empty())
            return fail(errc::invalid_argument, origin + ": Include needs a file or glob");
        if (depth + 1 > max_include_depth)
            return fail(errc::invalid_argument, origin + ": Include nested more than " +
                                                    std::to_string(max_include_depth) +
                                                    " deep (does a file include itself?)");
        for (const auto& arg : args) {
            std::string path;
            if (arg == "~" || arg.starts_with("~/"))
                path = ctx.home + arg.substr(1);
            else if (arg.starts_with("/"))
                path = arg;
            else if (arg.starts_with("~"))
                return fail(errc::invalid_argument, origin + ": Include " +
                                                        quoted_config_value(arg) +
                                                        ": ~user paths are not supported");
            else
                path = include_base + "/" + arg;

            glob_t g{};
            int rc = ::glob(path.c_str(), 0, nullptr, &g);
            if (rc == GLOB_NOMATCH) {
                ::globfree(&g);
                continue;  // like OpenSSH: an Include that matches nothing is fine
            }
            if (rc != 0) {
                ::globfree(&g);
                return fail(errc::io_error, origin + ": Include " + quoted_config_value(arg) +
                                                ": cannot expand glob");
            }
            std::vector<std::string> files(g.gl_pathv, g.gl_pathv + g.gl_pathc);
            ::globfree(&g);
            for (const auto& f : files) {
                // The included file starts in the includer's state and cannot
                // change it (OpenSSH restores the Host/Match state afterwards).
                out.push_back(entry{entry::kind::scope_begin, 0, {}, f});
                if (auto r = read_file(f, depth + 1, false, origin); !r) return r;
                out.push_back(entry{entry::kind::scope_end, 0, {}, f});
            }
        }
        return {};
    }

    // Returns errc::not_found for a missing file when !missing_ok.
    core::result<void> read_file(const std::string& path, int depth, bool missing_ok,
                                 const std::string& included_from = {}) {
        std::string prefix = included_from.empty() ? "" : included_from + ": ";
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) {
            int err = errno;
            if (err == ENOENT && missing_ok) return {};
            errc code = err == ENOENT   ? errc::not_found
                        : err == EACCES ? errc::permission_denied
                                        : errc::io_error;
            return fail(code,
                        prefix + "cannot read ssh config " + path + ": " + std::strerror(err));
        }
        std::string text;
        std::array<char, 8192> buf{};
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
            text.append(buf.data(), n);
            if (text.size() > 16 * 1024 * 1024) {
                std::fclose(f);
                return fail(errc::invalid_argument,
                            prefix + "ssh config " + path + " is larger than 16 MiB");
            }
        }
        bool failed = std::ferror(f) != 0;
        int err = errno;
        std::fclose(f);
        if (failed)
            return fail(errc::io_error,
                        prefix + "cannot read ssh config " + path + ": " + std::strerror(err));
        return parse_text(text, path, depth);
    }
};

}  // namespace

core::result<ssh_config> ssh_config::parse(std::string_view text, std::string_view source_name,
                                           const resolve_context& ctx) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
    cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, std::string(source_name)});
    if (auto r = l.parse_text(text, std::string(source_name), 0); !r)
        return tl::unexpected(r.error());
    cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, std::string(source_name)});
    return cfg;
}

core::result<ssh_config> ssh_config::load_file(const std::string& path,
                                               const resolve_context& ctx) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
    cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, path});
    if (auto r = l.read_file(path, 0, false); !r) return tl::unexpected(r.error());
    cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, path});
    return cfg;
}

core::result<ssh_config> ssh_config::load_default(const resolve_context& ctx,
                                                  const std::string& system_path) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    const std::string user_path = ctx.home + "/.ssh/config";
    {
        loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
        cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, user_path});
        if (auto r = l.read_file(user_path, 0, true); !r) return tl::unexpected(r.error());
        cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, user_path});
    }
    if (!system_path.empty()) {
        auto slash = system_path.rfind('/');
        std::string base = slash == std::string::npos ? "." : system_path.substr(0, slash);
        loader l{ctx, base, cfg.entries_, {}};
        cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, system_path});
        if (auto r = l.read_file(system_path, 0, true); !r) return tl::unexpected(r.error());
        cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, system_path});
    }
    return cfg;
}

core::result<void> ssh_config::add_override(std::string_view key_eq_value) {
    const std::string origin = "-o " + std::string(key_eq_value);
    auto split = split_config_line(key_eq_value);
    if (!split) return tl::unexpected(at("invalid " + origin, split.error()));
    if (!*split)
        return fail(errc::invalid_argument,
                    "empty option " + origin + "; write -o Key=Value, e.g. -o Port=2222");
    auto& [keyword, args, raw] = **split;
    const keyword_info* k = find_keyword(keyword);
    if (!k)
        return fail(
            errc::invalid_argument,
            "unknown option " + origin + ": not an ssh_config keyword (see man 5 ssh_config)");
    if (k->id == k_host || k->id == k_match || k->id == k_include)
        return fail(errc::invalid_argument,
                    "option " + origin + ": " + std::string(k->name) +
                        " cannot be given with -o; put it in a file and use -F FILE");
    std::vector<std::string> values =
        k->id == k_proxy_command ? std::vector<std::string>{raw} : std::move(args);
    if (values.empty() || (values.size() == 1 && values[0].empty() && k->id != k_ignored))
        return fail(errc::invalid_argument, "option " + origin + ": missing value; write -o " +
                                                std::string(k->name) + "=VALUE");
    if (auto r = apply_option(k->id, values, nullptr); !r)
        return tl::unexpected(at("invalid " + origin, r.error()));
    overrides_.push_back(entry{entry::kind::option, k->id, std::move(values), origin});
    return {};
}

}  // namespace tunnel::ssh
