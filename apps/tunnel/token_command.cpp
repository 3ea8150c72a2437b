// tunnel token: mints an HS256 relay token (RELAY contract claims).
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/duration.hpp"
#include "relay/token_minter.hpp"

namespace tunnel::cli {

namespace {

struct token_flags {
    std::string secret_file;
    std::string tenant;
    std::vector<std::string> allow;
    std::string ttl;
    std::optional<unsigned> max_streams;
    std::optional<double> rps;
    std::optional<std::string> audience;
    std::optional<std::string> issuer;
    bool json = false;
};

int run_token_command(const token_flags& f) {
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
    req.audience = f.audience;
    req.issuer = f.issuer;
    auto minted = relay::mint_token(req);
    if (!minted) return report(minted.error());
    for (const auto& w : minted->warnings) fmt::print(stderr, "tunnel token: warning: {}\n", w);
    if (f.json) {
        auto exp =
            std::chrono::duration_cast<std::chrono::seconds>(minted->expires.time_since_epoch())
                .count();
        std::cout << nlohmann::json{{"token", minted->token},
                                    {"tenant", minted->tenant},
                                    {"exp", exp}}
                         .dump()
                  << "\n";
    } else {
        std::cout << minted->token << "\n";
    }
    return 0;
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
        "llm=127.0.0.1:11434");
    auto flags = std::make_shared<token_flags>();
    cmd->add_option("--secret-file", flags->secret_file,
                    "The relay's HS256 secret (jwt.secret_file)")
        ->required();
    cmd->add_option("--tenant", flags->tenant, "Tenant (the token's sub): a-z, 0-9, '-'")
        ->required();
    cmd->add_option("--allow", flags->allow,
                    "Service names the tenant may publish, globs, comma-separated")
        ->required();
    cmd->add_option("--ttl", flags->ttl, "Lifetime, e.g. 30m, 12h")->required();
    cmd->add_option("--max-streams", flags->max_streams,
                    "Concurrent streams per tunnel (default: relay config)");
    cmd->add_option("--rps", flags->rps,
                    "Requests per second for the tenant (default: relay config)");
    cmd->add_option("--audience", flags->audience,
                    "aud claim (when the relay checks jwt.audience)");
    cmd->add_option("--issuer", flags->issuer, "iss claim (when the relay checks jwt.issuer)");
    cmd->add_flag("--json", flags->json, "Print {token, tenant, exp} as JSON");
    cmd->callback([flags, &run] { run = [flags] { return run_token_command(*flags); }; });
}

}  // namespace tunnel::cli
