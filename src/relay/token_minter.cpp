#include "relay/token_minter.hpp"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <jwt.h>
#include <nlohmann/json.hpp>

#include "core/duration.hpp"
#include "relay/public_route.hpp"
#include "relay/token_verifier.hpp"

namespace tunnel::relay {

namespace {

struct jwt_deleter {
    void operator()(jwt_t* p) const noexcept { jwt_free(p); }
};
struct cstr_deleter {
    void operator()(char* p) const noexcept { std::free(p); }
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::vector<std::string> split_allow_list(std::string_view list) {
    std::vector<std::string> out;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return out;
}

core::result<minted_token> mint_token(const mint_request& req,
                                      std::chrono::system_clock::time_point now) {
    std::vector<std::string> problems;
    minted_token out;

    auto tenant = normalize_label(req.tenant, "--tenant");
    if (!tenant)
        problems.push_back(tenant.error().message);
    else
        out.tenant = *tenant;

    std::vector<std::string> allow;
    if (req.allow.empty())
        problems.push_back(
            "--allow: list the service names the tenant may publish, e.g. --allow 'llm,web-*'");
    for (const auto& g : req.allow) {
        auto glob = lower(g);
        if (!valid_name_glob(glob))
            problems.push_back(fmt::format(
                "--allow \"{}\": a name glob is 1-63 characters of a-z, 0-9, '-', '*' and '?'", g));
        else
            allow.push_back(glob);
    }

    constexpr auto max_ttl = std::chrono::hours(24 * 366);
    if (req.ttl.count() <= 0)
        problems.push_back("--ttl: must be > 0, e.g. --ttl 1h");
    else if (req.ttl > max_ttl)
        problems.push_back(fmt::format("--ttl {}: must be at most {} (366 days)",
                                       core::format_duration(req.ttl),
                                       core::format_duration(max_ttl)));
    if (req.max_streams && *req.max_streams == 0) problems.push_back("--max-streams: must be >= 1");
    if (req.rps && (!std::isfinite(*req.rps) || *req.rps <= 0 || *req.rps > 1e6))
        problems.push_back("--rps: must be a number > 0 and <= 1000000");
    if (req.audience && req.audience->empty()) problems.push_back("--audience: must not be empty");
    if (req.issuer && req.issuer->empty()) problems.push_back("--issuer: must not be empty");

    std::string secret;
    if (req.secret_file.empty()) {
        problems.push_back("--secret-file: required (the relay's jwt.secret_file)");
    } else if (auto s = read_secret_file(req.secret_file); !s) {
        problems.push_back("--secret-file: " + s.error().message);
    } else {
        secret = std::move(*s);
        struct stat st {};
        if (::stat(req.secret_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
            out.warnings.push_back(
                fmt::format("secret file {} is readable by group or others (mode {:04o}); "
                            "run `chmod 600 {}`",
                            req.secret_file, st.st_mode & 07777, req.secret_file));
    }
    if (!problems.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(problems, "\n")));

    const auto ttl_s = (req.ttl.count() + 999) / 1000;
    const auto iat =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    nlohmann::json claims{
        {"sub", out.tenant}, {"allow", allow}, {"iat", iat}, {"exp", iat + ttl_s}};
    if (req.max_streams) claims["max_streams"] = *req.max_streams;
    if (req.rps) claims["rps"] = *req.rps;
    if (req.audience) claims["aud"] = *req.audience;
    if (req.issuer) claims["iss"] = *req.issuer;

    jwt_t* raw = nullptr;
    if (jwt_new(&raw) != 0)
        return core::fail(core::errc::resource_exhausted, "cannot create a JWT (out of memory)");
    std::unique_ptr<jwt_t, jwt_deleter> jwt(raw);
    if (jwt_add_grants_json(jwt.get(), claims.dump().c_str()) != 0 ||
        jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                    static_cast<int>(secret.size())) != 0)
        return core::fail(core::errc::invalid_argument, "libjwt refused the claims or the secret");
    std::unique_ptr<char, cstr_deleter> token(jwt_encode_str(jwt.get()));
    if (!token)
        return core::fail(core::errc::resource_exhausted, "libjwt could not encode the token");
    out.token = token.get();
    out.expires = std::chrono::system_clock::time_point(std::chrono::seconds(iat + ttl_s));
    return out;
}

}  // namespace tunnel::relay
