// tunnel connect URL --token-file T --expose NAME=HOST:PORT...: publish
// local services through a relay, reconnecting by itself.
#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "forward/relay_client.hpp"

namespace tunnel::cli {

namespace {

struct connect_flags {
    std::string url;
    std::string token_file;
    std::vector<std::string> exposes;
    std::string ca_file;
    bool insecure = false;
    std::string relay_host_key;
    std::string ciphers;
    std::string keepalive = "15s";
    std::string connect_timeout = "15s";
    bool no_reconnect = false;
    bool json = false;
};

void print_event(const forward::relay_event& ev, bool json) {
    using kind = forward::relay_event::kind;
    if (json) {
        nlohmann::json j;
        j["event"] = ev.what == kind::attached    ? "attached"
                     : ev.what == kind::published ? "published"
                                                  : "refused";
        j["tenant"] = ev.tenant;
        if (ev.what != kind::attached) {
            j["name"] = ev.name;
            j["target"] = ev.target;
        }
        if (ev.what == kind::published) j["urls"] = ev.urls;
        if (ev.what == kind::refused) j["message"] = ev.message;
        fmt::print(stdout, "{}\n", j.dump());
    } else if (ev.what == kind::attached) {
        spdlog::info("attached to the relay as tenant {}", ev.tenant);
    } else if (ev.what == kind::published) {
        fmt::print(stdout, "{} -> {}: {}\n", ev.name, ev.target,
                   ev.urls.empty() ? std::string("published (the relay sent no public URL)")
                                   : fmt::format("{}", fmt::join(ev.urls, "  ")));
    } else {
        fmt::print(stderr, "tunnel: {}\n", ev.message);
    }
    std::fflush(stdout);
}

int run_connect(const connect_flags& f) {
    forward::relay_client_options o;
    auto url = transport::parse_ws_url(f.url);
    if (!url) return report(url.error());
    o.url = std::move(*url);
    if (f.token_file.empty())
        return report(
            {core::errc::invalid_argument, "the relay needs a token: pass --token-file FILE"});
    auto token = transport::read_token_file(f.token_file);
    if (!token) return report(token.error());
    o.ws.token = std::move(*token);
    if (!f.ca_file.empty()) o.ws.ca_file = f.ca_file;
    o.ws.insecure = f.insecure;
    if (f.insecure && o.url.tls)
        fmt::print(
            stderr,
            "tunnel connect: warning: --insecure: the relay's TLS certificate is not checked; "
            "anyone on the path can read the token\n");
    for (const auto& text : f.exposes) {
        auto e = forward::parse_expose(text);
        if (!e) return report(e.error());
        o.exposes.push_back(std::move(*e));
    }
    if (!f.relay_host_key.empty()) o.relay_host_key = f.relay_host_key;
    if (!f.ciphers.empty()) o.ciphers = f.ciphers;
    auto keepalive = core::parse_duration(f.keepalive);
    if (!keepalive || keepalive->count() < 1000)
        return report({core::errc::invalid_argument,
                       "--keepalive: give a duration of at least 1s, e.g. 15s"});
    o.keepalive = std::chrono::duration_cast<std::chrono::seconds>(*keepalive);
    auto connect_timeout = core::parse_duration(f.connect_timeout);
    if (!connect_timeout || connect_timeout->count() <= 0)
        return report({core::errc::invalid_argument,
                       "--connect-timeout: give a positive duration, e.g. 15s"});
    o.ws.connect_timeout = *connect_timeout;
    o.ws.idle_timeout = std::max<std::chrono::milliseconds>(o.keepalive * 2, o.ws.idle_timeout);
    o.reconnect = !f.no_reconnect;
    o.on_event = [json = f.json](const forward::relay_event& ev) { print_event(ev, json); };

    auto sup_options = forward::relay_supervisor_options(std::move(o));
    if (!sup_options) return report(sup_options.error());
    asio::io_context io;
    auto sup = forward::supervisor::create(io.get_executor(), std::move(*sup_options));
    if (!sup) return report(sup.error());

    bool by_signal = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer grace(io);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        by_signal = true;
        (*sup)->stop();
        grace.expires_after(std::chrono::milliseconds(200));
        grace.async_wait([&](boost::system::error_code e) {
            if (!e) io.stop();
        });
    });
    std::optional<core::result<void>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await (*sup)->run();
        (*sup)->stop();
        // Nothing may stay pending for io.run() to return: the signal wait and
        // its grace timer end here too.
        signals.cancel();
        grace.cancel();
    });
    if (by_signal) return 0;
    if (outcome && !*outcome) {
        auto e = outcome->error();
        if (e.code == core::errc::host_key_changed && f.relay_host_key.empty())
            e.message += "; or pin the key you expect with --relay-host-key SHA256:...";
        return report(e);
    }
    return 0;
}

}  // namespace

void add_connect_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<connect_flags>();
    auto* cmd = app.add_subcommand(
        "connect", "Publish local services through a relay (reconnecting by itself)");
    cmd->footer(
        "Example:\n"
        "  tunnel connect wss://relay.example.com/v1/tunnel --token-file ~/.config/tunnel/token "
        "\\\n"
        "      --expose llm=127.0.0.1:11434 --expose web=127.0.0.1:8080\n"
        "Prints each name's public URL. The relay's SSH host key is recorded on first use in\n"
        "~/.config/tunnel/relay_known_hosts; a changed key is refused.");
    cmd->add_option("url", flags->url,
                    "The relay's attach URL: wss://HOST[:PORT]/v1/tunnel (ws:// on loopback)")
        ->required();
    cmd->add_option("--token-file", flags->token_file,
                    "File holding the bearer token (JWT) the relay issued")
        ->required();
    cmd->add_option("--expose", flags->exposes,
                    "NAME=HOST:PORT: publish NAME, carried to HOST:PORT here (repeatable)")
        ->required();
    cmd->add_option("--ca-file", flags->ca_file,
                    "Trust the CA certificates (PEM) in this file, e.g. a self-signed relay's");
    cmd->add_flag("--insecure", flags->insecure,
                  "Do not verify the relay's TLS certificate (throwaway tests only)");
    cmd->add_option(
        "--relay-host-key", flags->relay_host_key,
        "Accept only this relay SSH host key (SHA256:... as the relay prints it at start)");
    cmd->add_option("--ciphers", flags->ciphers,
                    "SSH ciphers to offer, comma-separated, e.g. aes128-gcm@openssh.com");
    cmd->add_option("--keepalive", flags->keepalive,
                    "SSH keepalive interval; 3 unanswered mean reconnect")
        ->capture_default_str();
    cmd->add_option("--connect-timeout", flags->connect_timeout,
                    "Deadline for TCP, TLS and the upgrade")
        ->capture_default_str();
    cmd->add_flag("--no-reconnect", flags->no_reconnect,
                  "Exit when the connection is lost instead of reconnecting");
    cmd->add_flag("--json", flags->json,
                  "One JSON event per line on stdout (attached, published, refused)");
    cmd->callback([flags, &run] { run = [flags] { return run_connect(*flags); }; });
}

}  // namespace tunnel::cli
