#include "ssh/ssh_config_match.hpp"

#include "core/glob.hpp"
#include "ssh/ssh_config_syntax.hpp"

namespace tunnel::ssh::config_match {

using config_keywords::resolve_state;
using config_syntax::lower;
using config_syntax::quoted_config_value;
using core::errc;
using core::fail;

bool match_pattern_list(std::string_view text, std::string_view list, bool fold_case) {
    return core::pattern_list_match(list, text, fold_case);
}

namespace {

constexpr std::string_view match_help =
    "supported: all, host, originalhost, user, localuser, each optionally negated with !";

}  // namespace

core::result<std::vector<std::string>> parse_match(const std::vector<std::string>& args) {
    if (args.empty())
        return fail(errc::invalid_argument,
                    "Match needs criteria (" + std::string(match_help) + ")");
    std::vector<std::string> out;  // pairs: criterion (maybe "!x"), argument
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string crit = lower(args[i]);
        std::string_view bare = crit;
        if (!bare.empty() && bare[0] == '!') bare.remove_prefix(1);
        if (bare == "all") {
            if (args.size() != 1)
                return fail(errc::invalid_argument,
                            "Match all cannot be combined with other criteria");
            out.push_back(crit);
            out.emplace_back();
            continue;
        }
        if (bare != "host" && bare != "originalhost" && bare != "user" && bare != "localuser")
            return fail(errc::invalid_argument, "Match " + quoted_config_value(args[i]) +
                                                    " is not supported (" +
                                                    std::string(match_help) + ")");
        if (i + 1 >= args.size() || args[i + 1].empty())
            return fail(errc::invalid_argument, "Match " + std::string(bare) +
                                                    " needs a pattern, e.g. Match " +
                                                    std::string(bare) + " *.example.com");
        out.push_back(crit);
        out.push_back(args[++i]);
    }
    return out;
}

bool match_matches(const std::vector<std::string>& criteria, const resolve_state& st) {
    for (std::size_t i = 0; i + 1 < criteria.size(); i += 2) {
        std::string_view crit = criteria[i];
        bool negate = crit[0] == '!';
        if (negate) crit.remove_prefix(1);
        const std::string& pat = criteria[i + 1];
        bool r = true;
        if (crit == "host")
            r = match_pattern_list(st.current_hostname(), pat, true);
        else if (crit == "originalhost")
            r = match_pattern_list(st.alias, pat, true);
        else if (crit == "user")
            r = match_pattern_list(st.current_user(), pat, false);
        else if (crit == "localuser")
            r = match_pattern_list(st.ctx->local_user, pat, false);
        if (r == negate) return false;
    }
    return true;
}

bool host_matches(const std::vector<std::string>& patterns, std::string_view alias) {
    bool matched = false;
    for (const auto& p : patterns) {
        std::string_view pat = p;
        bool negated = pat[0] == '!';
        if (negated) pat.remove_prefix(1);
        if (core::glob_match(pat, alias, true)) {
            if (negated) return false;  // a negated match excludes the block
            matched = true;
        }
    }
    return matched;
}
}  // namespace tunnel::ssh::config_match
