// tunnel share grant|list|revoke: manage who else may call (invoke) or see
// the stats of (view) a tenant's published names, through the relay's share
// API with the tenant's own tunnel token (docs/relay.md "Sharing").
#include <cstdio>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/duration.hpp"
#include "relay/share_client.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::cli {

namespace {

using json = nlohmann::json;

struct share_flags {
    std::string relay;
    std::string token_file;
    std::string ca_file;
    bool insecure = false;
    bool allow_plaintext = false;
    std::string timeout = "15s";
    bool json = false;
    // grant
    std::string name;
    std::string to;
    std::string role = "invoke";
    std::string expires;
    // revoke
    std::string id;
};

core::result<relay::share_client_options> client_options(const share_flags& f) {
    relay::share_client_options o;
    auto url = relay::parse_relay_base_url(f.relay);
    if (!url) return tl::unexpected(url.error());
    o.relay = std::move(*url);
    auto token = transport::read_token_file(f.token_file);
    if (!token) return tl::unexpected(token.error());
    o.token = std::move(*token);
    if (!f.ca_file.empty()) o.ca_file = f.ca_file;
    o.insecure = f.insecure;
    o.allow_plaintext = f.allow_plaintext;
    auto timeout = core::parse_duration(f.timeout);
    if (!timeout || timeout->count() < 100)
        return core::fail(core::errc::invalid_argument, "--timeout: give a duration, e.g. 15s");
    o.timeout = *timeout;
    if (f.insecure && o.relay.tls)
        std::fputs(
            "tunnel share: warning: --insecure: the relay's TLS certificate is not checked; "
            "anyone on the path can read the token\n",
            stderr);
    return o;
}

// The relay's JSON answer, or its error as one line (exit code by status).
core::result<json> call(const share_flags& f, std::string_view method, std::string_view target,
                        std::string_view body) {
    auto o = client_options(f);
    if (!o) return tl::unexpected(o.error());
    auto reply = relay::call_share_api(*o, method, target, body);
    if (!reply) return tl::unexpected(reply.error());
    auto j = json::parse(reply->body, nullptr, false);
    if (reply->status >= 200 && reply->status < 300 && j.is_object()) return j;
    std::string message = j.is_object() ? j.value("message", "") : "";
    if (message.empty())
        message = fmt::format("the relay answered HTTP {} (is --relay the relay's public URL?)",
                              reply->status);
    auto code = core::errc::protocol_error;
    if (reply->status == 400 || reply->status == 413) code = core::errc::invalid_argument;
    if (reply->status == 401 || reply->status == 403) code = core::errc::denied;
    if (reply->status == 404) code = core::errc::not_found;
    if (reply->status == 429) code = core::errc::resource_exhausted;
    return core::fail(code, fmt::format("share: {}", message));
}

void print_grant(const json& g) {
    fmt::print("{}  {} -> {} ({}) until {}\n", g.value("id", ""), g.value("name", ""),
               g.value("to", ""), g.value("role", ""), g.value("expires", ""));
}

int run_grant(const share_flags& f) {
    if (!core::parse_duration(f.expires))
        return report({core::errc::invalid_argument,
                       fmt::format("--expires '{}': give a duration, e.g. 24h or 30m", f.expires)});
    const json body{{"name", f.name}, {"to", f.to}, {"role", f.role}, {"expires_in", f.expires}};
    auto j = call(f, "POST", "/v1/shares", body.dump());
    if (!j) return report(j.error());
    if (f.json)
        fmt::print("{}\n", j->dump());
    else
        print_grant(*j);
    return 0;
}

int run_list(const share_flags& f) {
    auto j = call(f, "GET", "/v1/shares", "");
    if (!j) return report(j.error());
    if (f.json) {
        fmt::print("{}\n", j->dump());
        return 0;
    }
    const auto& shares = (*j)["shares"];
    if (!shares.is_array() || shares.empty()) {
        fmt::print("no live grants\n");
        return 0;
    }
    for (const auto& g : shares) print_grant(g);
    return 0;
}

int run_revoke(const share_flags& f) {
    auto j = call(f, "DELETE", "/v1/shares/" + f.id, "");
    if (!j) return report(j.error());
    if (f.json)
        fmt::print("{}\n", j->dump());
    else
        fmt::print("revoked {}\n", f.id);
    return 0;
}

void add_common(CLI::App& cmd, share_flags& f) {
    cmd.add_option("--relay", f.relay,
                   "The relay's public URL: https://HOST[:PORT] (the wss:// attach URL works too)")
        ->required();
    cmd.add_option("--token-file", f.token_file,
                   "Your tenant's tunnel token (the one tunnel connect uses)")
        ->required();
    cmd.add_option("--ca-file", f.ca_file, "Trust the CA certificates (PEM) in this file");
    cmd.add_flag("--insecure", f.insecure, "Do not check the relay's TLS certificate (tests only)");
    cmd.add_flag("--allow-plaintext", f.allow_plaintext,
                 "Send the token over http:// to a host that is not loopback");
    cmd.add_option("--timeout", f.timeout, "How long the relay may take to answer (default 15s)");
    cmd.add_flag("--json", f.json, "Print the relay's JSON answer");
}

}  // namespace

void add_share_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<share_flags>();
    auto* cmd = app.add_subcommand(
        "share", "Let another tenant or a visitor audience call or view one of your names");
    cmd->footer(
        "Examples:\n"
        "  tunnel share grant llm --to tenant:bob --role invoke --expires 24h \\\n"
        "      --relay https://relay.example.com --token-file ~/.config/tunnel/token\n"
        "  tunnel share list --relay https://relay.example.com --token-file T [--json]\n"
        "  tunnel share revoke shr_0123456789abcdef0123 --relay https://relay.example.com "
        "--token-file T\n"
        "Bob then calls https://llm--acme.relay.example.com/ with Authorization: Bearer <his own\n"
        "tunnel token>; an audience:NAME grant admits visitor tokens minted with --audience NAME.\n"
        "Revoking takes effect on the next request.");
    cmd->require_subcommand(1);

    auto* grant = cmd->add_subcommand("grant", "Grant access to one of your names");
    grant->add_option("name", f->name, "The published name to share, e.g. llm")->required();
    grant->add_option("--to", f->to, "tenant:ID (another tenant) or audience:NAME (visitor tokens)")
        ->required();
    grant->add_option("--role", f->role, "invoke (call it, the default) or view (see its stats)");
    grant->add_option("--expires", f->expires, "When the grant ends, from now: e.g. 24h, 30m")
        ->required();
    add_common(*grant, *f);
    grant->callback([f, &run] { run = [f] { return run_grant(*f); }; });

    auto* list = cmd->add_subcommand("list", "List your live grants");
    add_common(*list, *f);
    list->callback([f, &run] { run = [f] { return run_list(*f); }; });

    auto* revoke = cmd->add_subcommand("revoke", "Revoke a grant (effective on the next request)");
    revoke->add_option("id", f->id, "The grant's id (shr_...), as tunnel share list shows it")
        ->required();
    add_common(*revoke, *f);
    revoke->callback([f, &run] { run = [f] { return run_revoke(*f); }; });
}

}  // namespace tunnel::cli
