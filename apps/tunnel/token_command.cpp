// tunnel token: mints an HS256 relay token (RELAY contract claims): a tunnel
// token for a publisher, or with --visitor a visitor token for a caller.
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/duration.hpp"
#include "core/secret_file.hpp"
#include "relay/revocation_list.hpp"
#include "relay/token_minter.hpp"
#include "usage/usage_client.hpp"

namespace tunnel::cli {

namespace {

struct token_flags {
    std::string secret_file;
    std::string tenant;
    std::vector<std::string> allow;
    std::string ttl;
    std::optional<unsigned> max_streams;
    std::optional<double> rps;
    std::string lease_grace;
    std::optional<std::string> audience;
    std::optional<std::string> issuer;
    std::vector<std::string> access;
    bool visitor = false;
    bool json = false;
    // --revoke JTI --relay ADMIN_URL: revoke instead of mint.
    std::string revoke;
    std::string relay;
    std::string admin_token_file;
    std::string reason;
    std::string timeout = "10s";
};

// tunnel token --revoke JTI --relay http://ADMIN [--admin-token-file F]
// [--reason TEXT]: POST /api/v1/tokens/revoke on the relay's admin listener.
int run_revoke(const token_flags& f) {
    std::vector<std::string> wrong;
    if (!f.secret_file.empty()) wrong.push_back("--secret-file");
    if (!f.tenant.empty()) wrong.push_back("--tenant");
    if (!f.allow.empty()) wrong.push_back("--allow");
    if (!f.ttl.empty()) wrong.push_back("--ttl");
    if (f.visitor) wrong.push_back("--visitor");
    if (!wrong.empty())
        return report({core::errc::invalid_argument,
                       fmt::format("--revoke: {} {} for minting; --revoke takes the token's jti, "
                                   "--relay and --admin-token-file",
                                   fmt::join(wrong, ", "), wrong.size() == 1 ? "is" : "are")});
    if (auto why = relay::check_jti(f.revoke); !why.empty())
        return report(
            {core::errc::invalid_argument,
             fmt::format("--revoke: the jti {}; tunnel token --json prints a token's jti", why)});
    if (f.relay.empty())
        return report({core::errc::invalid_argument,
                       "--revoke needs --relay http://HOST:PORT: the relay's admin listener "
                       "(admin_listen)"});
    auto url = usage::parse_admin_url(f.relay);
    if (!url) return report(url.error());
    auto timeout = core::parse_duration(f.timeout);
    if (!timeout)
        return report(
            {core::errc::invalid_argument, fmt::format("--timeout: {}", timeout.error().message)});
    std::string token;
    if (!f.admin_token_file.empty()) {
        auto t = core::read_secret_file(f.admin_token_file, "--admin-token-file", 16);
        if (!t) return report(t.error());
        token = std::move(*t);
    }
    nlohmann::json body{{"jti", f.revoke}};
    if (!f.reason.empty()) body["reason"] = f.reason;
    auto reply = usage::admin_post(*url, "/api/v1/tokens/revoke", body.dump(), token, *timeout);
    if (!reply) return report(reply.error());
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(reply->body);
    } catch (const nlohmann::json::exception&) {
    }
    if (reply->status != 200) {
        std::string message = j.is_object() ? j.value("message", reply->body) : reply->body;
        while (!message.empty() && message.back() == '\n') message.pop_back();
        const std::string hint =
            reply->status == 401 ? " (give the relay's admin token with --admin-token-file)" : "";
        fmt::print(stderr, "tunnel: the relay answered {}: {}{}\n", reply->status, message, hint);
        return reply->status == 400 ? exit_usage : 1;
    }
    if (f.json) {
        std::cout << j.dump() << "\n";
        return 0;
    }
    if (j.is_object() && j.contains("warning") && j["warning"].is_string())
        fmt::print(stderr, "tunnel token: warning: {}\n", j["warning"].get<std::string>());
    fmt::print("revoked {}{}; {} attached tunnel(s) closed; kept until {}\n", f.revoke,
               j.value("new", true) ? "" : " (already revoked)", j.value("tunnels_closed", 0),
               j.value("kept_until", std::string("?")));
    return 0;
}

int print_minted(const relay::minted_token& minted, bool json) {
    for (const auto& w : minted.warnings) fmt::print(stderr, "tunnel token: warning: {}\n", w);
    if (json) {
        auto exp =
            std::chrono::duration_cast<std::chrono::seconds>(minted.expires.time_since_epoch())
                .count();
        std::cout << nlohmann::json{{"token", minted.token},
                                    {"tenant", minted.tenant},
                                    {"jti", minted.id},
                                    {"exp", exp}}
                         .dump()
                  << "\n";
    } else {
        std::cout << minted.token << "\n";
    }
    return 0;
}

int run_visitor_token(const token_flags& f) {
    std::vector<std::string> wrong;
    if (f.max_streams) wrong.push_back("--max-streams");
    if (f.rps) wrong.push_back("--rps");
    if (!f.lease_grace.empty()) wrong.push_back("--lease-grace");
    if (f.issuer) wrong.push_back("--issuer");
    if (!f.access.empty()) wrong.push_back("--access");
    if (!wrong.empty())
        return report({core::errc::invalid_argument,
                       fmt::format("--visitor: {} {} for tunnel tokens only; a visitor token "
                                   "names a tenant, its services (--allow) and a --ttl",
                                   fmt::join(wrong, ", "), wrong.size() == 1 ? "is" : "are")});
    relay::visitor_mint_request req;
    req.secret_file = f.secret_file;
    req.tenant = f.tenant;
    for (const auto& a : f.allow)
        for (auto& g : relay::split_allow_list(a)) req.allow.push_back(std::move(g));
    auto ttl = core::parse_duration(f.ttl);
    if (!ttl) return report({core::errc::invalid_argument, "--ttl: " + ttl.error().message});
    req.ttl = *ttl;
    // --audience NAME: the visitor is in audience NAME too, which tenants
    // may share names with (tunnel share grant NAME --to audience:NAME).
    if (f.audience)
        for (auto& a : relay::split_allow_list(*f.audience)) req.audiences.push_back(std::move(a));
    auto minted = relay::mint_visitor_token(req);
    if (!minted) return report(minted.error());
    return print_minted(*minted, f.json);
}

int run_token_command(const token_flags& f) {
    if (!f.revoke.empty()) return run_revoke(f);
    if (!f.relay.empty() || !f.admin_token_file.empty() || !f.reason.empty())
        return report({core::errc::invalid_argument,
                       "--relay, --admin-token-file and --reason go with --revoke JTI"});
    std::vector<std::string> missing;
    if (f.secret_file.empty()) missing.push_back("--secret-file");
    if (f.tenant.empty()) missing.push_back("--tenant");
    if (f.allow.empty()) missing.push_back("--allow");
    if (f.ttl.empty()) missing.push_back("--ttl");
    if (!missing.empty())
        return report({core::errc::invalid_argument,
                       fmt::format("{} {} required to mint a token (or give --revoke JTI "
                                   "--relay URL to revoke one)",
                                   fmt::join(missing, ", "), missing.size() == 1 ? "is" : "are")});
    if (f.visitor) return run_visitor_token(f);
    relay::mint_request req;
    req.secret_file = f.secret_file;
    req.tenant = f.tenant;
    for (const auto& a : f.allow)
        for (auto& g : relay::split_allow_list(a)) req.allow.push_back(std::move(g));
    auto ttl = core::parse_duration(f.ttl);
    if (!ttl) return report({core::errc::invalid_argument, "--ttl: " + ttl.error().message});
    req.ttl = *ttl;
    req.max_streams = f.max_streams;
    req.rps = f.rps;
    if (!f.lease_grace.empty()) {
        auto g = core::parse_duration(f.lease_grace);
        if (!g)
            return report({core::errc::invalid_argument, "--lease-grace: " + g.error().message});
        req.lease_grace = *g;
    }
    req.audience = f.audience;
    req.issuer = f.issuer;
    req.access = f.access;
    auto minted = relay::mint_token(req);
    if (!minted) return report(minted.error());
    return print_minted(*minted, f.json);
}

}  // namespace

void add_token_command(CLI::App& app, command_runner& run) {
    auto* cmd = app.add_subcommand(
        "token", "Mint an HS256 token for a relay (tunnel relay --dev, jwt.secret_file)");
    cmd->footer(
        "Prints the token on stdout; keep it in a file readable only by you.\n"
        "Examples:\n"
        "  head -c 32 /dev/urandom | base64 > jwt.secret && chmod 600 jwt.secret\n"
        "  tunnel token --secret-file jwt.secret --tenant acme --allow 'llm,web-*' --ttl 12h > "
        "acme.token\n"
        "  tunnel connect wss://relay:8443/v1/tunnel --token-file acme.token --expose "
        "llm=127.0.0.1:11434 --access token\n"
        "  tunnel token --visitor --secret-file visitor.secret --tenant acme --allow llm --ttl 1h "
        "> visitor.token\n"
        "  curl -H \"Authorization: Bearer $(cat visitor.token)\" "
        "https://llm--acme.relay.example.com/\n"
        "  tunnel token --revoke k3JqX0... --relay http://127.0.0.1:9090 --admin-token-file "
        "admin.token --reason 'laptop stolen'");
    auto flags = std::make_shared<token_flags>();
    cmd->add_option("--secret-file", flags->secret_file,
                    "The relay's HS256 secret (jwt.secret_file; with --visitor: "
                    "visitors.secret_file)");
    cmd->add_option("--tenant", flags->tenant, "Tenant (the token's sub): a-z, 0-9, '-'");
    cmd->add_option("--allow", flags->allow,
                    "Service names the tenant may publish (with --visitor: may call), globs, "
                    "comma-separated");
    cmd->add_option("--ttl", flags->ttl, "Lifetime, e.g. 30m, 12h");
    cmd->add_option("--max-streams", flags->max_streams,
                    "Concurrent streams per tunnel (default: relay config)");
    cmd->add_option("--rps", flags->rps,
                    "Requests per second for the tenant (default: relay config)");
    cmd->add_option("--lease-grace", flags->lease_grace,
                    "How long a dropped tunnel keeps its names, e.g. 30s (lease_grace claim; "
                    "only shortens the relay's leases.grace)");
    cmd->add_option("--audience", flags->audience,
                    "aud claim (when the relay checks jwt.audience); with --visitor: audiences "
                    "(comma-separated) tenants may share names with (tunnel share grant "
                    "--to audience:NAME)");
    cmd->add_option("--issuer", flags->issuer, "iss claim (when the relay checks jwt.issuer)");
    cmd->add_option("--access", flags->access,
                    "Visitor access modes the publisher may choose: public, token, basic, ip, "
                    "comma-separated (default: all)");
    cmd->add_flag("--visitor", flags->visitor,
                  "Mint a visitor token (to call --allow NAMES of --tenant) instead of a tunnel "
                  "token");
    cmd->add_flag("--json", flags->json, "Print {token, tenant, jti, exp} as JSON");
    cmd->add_option("--revoke", flags->revoke,
                    "Revoke the token with this jti on a running relay (with --relay): tunnels "
                    "using it close at once, and it is refused from then on");
    cmd->add_option("--relay", flags->relay,
                    "With --revoke: the relay's admin listener, http://HOST:PORT");
    cmd->add_option("--admin-token-file", flags->admin_token_file,
                    "With --revoke: the relay's admin token (admin.token_file)");
    cmd->add_option("--reason", flags->reason, "With --revoke: why (for the audit log)");
    cmd->add_option("--timeout", flags->timeout, "With --revoke: how long to wait for the relay")
        ->capture_default_str();
    cmd->callback([flags, &run] { run = [flags] { return run_token_command(*flags); }; });
}

}  // namespace tunnel::cli
