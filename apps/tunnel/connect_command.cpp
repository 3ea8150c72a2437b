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
#include "core/spawn.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_failover.hpp"
#include "relay/relay_sessions.hpp"
#include "relay/token_renewal.hpp"
#include "relay/token_source.hpp"

namespace tunnel::cli {

namespace {

struct connect_flags {
    std::string url;
    std::vector<std::string> relays;  // --relay: more relays, in order of preference
    std::string relay_probe_interval = "5s";
    std::string token_file;
    std::string token_command;
    std::string token_command_timeout = "30s";
    std::vector<std::string> exposes;
    std::vector<std::string> expose_tcp;  // raw TCP names (the relay's tcp: section)
    std::string ca_file;
    bool insecure = false;
    bool allow_plaintext = false;
    relay::access_flags access;
    std::string relay_host_key;
    std::string ciphers;
    std::string keepalive = "15s";
    std::string connect_timeout = "15s";
    bool no_reconnect = false;
    bool json = false;
};

void print_event(const relay::relay_event& ev, bool json) {
    using kind = relay::relay_event::kind;
    if (ev.what == kind::host_key_recorded)  // on stderr in both modes: it is about trust
        fmt::print(stderr,
                   "tunnel connect: first connection to {}: its SSH host key is {}; recorded in "
                   "{} (trust on first use). Check it against the fingerprint the relay prints "
                   "at start; pin it with --relay-host-key {}\n",
                   ev.relay, ev.fingerprint, ev.known_hosts_file, ev.fingerprint);
    if (json) {
        nlohmann::json j;
        switch (ev.what) {
            case kind::attached:
                j = {{"event", "attached"},
                     {"tenant", ev.tenant},
                     {"lease_grace_s", ev.lease_grace.count()}};
                if (!ev.relay.empty()) j["relay"] = ev.relay;
                break;
            case kind::host_key_recorded:
                j = {{"event", "host_key_recorded"},
                     {"relay", ev.relay},
                     {"fingerprint", ev.fingerprint},
                     {"known_hosts", ev.known_hosts_file}};
                break;
            case kind::published:
            case kind::refused:
                j = {{"event", ev.what == kind::published ? "published" : "refused"},
                     {"tenant", ev.tenant},
                     {"name", ev.name},
                     {"target", ev.target},
                     {"access", ev.access.empty() ? "relay default" : ev.access}};
                if (ev.what == kind::published) j["urls"] = ev.urls;
                if (ev.tcp) j["proto"] = "tcp";
                if (ev.tcp && ev.what == kind::published) j["port"] = ev.tcp_port;
                if (ev.what == kind::refused) j["message"] = ev.message;
                break;
        }
        fmt::print(stdout, "{}\n", j.dump());
    } else if (ev.what == kind::attached) {
        spdlog::info("attached to the relay {}as tenant {}{}",
                     ev.relay.empty() ? std::string() : ev.relay + " ", ev.tenant,
                     ev.lease_grace.count() > 0
                         ? fmt::format(" (the names are held for {} s if the connection drops)",
                                       ev.lease_grace.count())
                         : std::string());
    } else if (ev.what == kind::published) {
        fmt::print(stdout, "{}{} -> {}{}: {}\n", ev.name, ev.tcp ? " (tcp)" : "", ev.target,
                   ev.access.empty() ? std::string() : fmt::format(" (access {})", ev.access),
                   ev.urls.empty() ? std::string("published (the relay sent no public URL)")
                                   : fmt::format("{}", fmt::join(ev.urls, "  ")));
    } else if (ev.what == kind::refused) {
        fmt::print(stderr, "tunnel: {}\n", ev.message);
    }
    std::fflush(stdout);
}

void print_switch(const relay::relay_switch& s, bool json) {
    if (json) {
        fmt::print(stdout, "{}\n",
                   nlohmann::json{{"event", "relay_switched"},
                                  {"from", s.from_url},
                                  {"to", s.to_url},
                                  {"reason", s.reason}}
                       .dump());
        std::fflush(stdout);
    } else if (s.reason == "preferred") {
        spdlog::info("moved back to the preferred relay {} (from {})", s.to_url, s.from_url);
    } else {
        spdlog::warn("the relay {} was lost; attached to {} instead", s.from_url, s.to_url);
    }
}

// The relays: the URL and each --relay (a name with several addresses counts
// as several; loopback names are not expanded). Every bad value is refused
// before connecting. One relay with one address: empty (no failover).
core::result<std::vector<transport::ws_url>> relays_of(const connect_flags& f) {
    auto relays = relay::parse_relays(f.url, f.relays, f.allow_plaintext);
    if (!relays) return tl::unexpected(relays.error());
    auto resolve = [](const std::string& host, std::uint16_t port) {
        return transport::is_loopback_host(host) ? std::vector<std::string>{}
                                                 : relay::system_resolver(host, port);
    };
    auto expanded = relay::expand_addresses(*relays, resolve);
    if (expanded.size() < 2) expanded.clear();
    return expanded;
}

int run_connect(const connect_flags& f) {
    relay::relay_client_options o;
    auto url = transport::parse_ws_url(f.url);
    if (!url) return report(url.error());
    // Before the token is even read: never toward a network in cleartext.
    if (auto plain = transport::check_plaintext(*url, true, f.allow_plaintext); !plain)
        return report(plain.error());
    o.url = std::move(*url);
    auto relays = relays_of(f);
    if (!relays) return report(relays.error());
    auto probe = core::parse_duration(f.relay_probe_interval);
    if (!probe || probe->count() < 100 || *probe > std::chrono::hours(1))
        return report({core::errc::invalid_argument,
                       "--relay-probe-interval: give a duration from 100ms to 1h, e.g. 5s"});
    o.ws.allow_plaintext = f.allow_plaintext;
    auto command_timeout = core::parse_duration(f.token_command_timeout);
    if (!command_timeout || command_timeout->count() <= 0)
        return report({core::errc::invalid_argument,
                       "--token-command-timeout: give a positive duration, e.g. 30s"});
    auto created = relay::token_source::create(
        {.file = f.token_file, .command = f.token_command, .command_timeout = *command_timeout});
    if (!created) return report(created.error());
    auto source = std::make_shared<relay::token_source>(std::move(*created));
    auto token = source->fetch();
    if (!token) return report(token.error());
    o.ws.token = std::move(*token);
    // Each attach uses the latest token: renewed before expiry, or re-read
    // when the file changed (relay/token_renewal.hpp); never another
    // tenant's (token_source refuses it).
    o.ws.token_source = [source] { return source->current(std::chrono::seconds(1)); };
    if (!f.ca_file.empty()) o.ws.ca_file = f.ca_file;
    o.ws.insecure = f.insecure;
    if (f.insecure && o.url.tls)
        fmt::print(
            stderr,
            "tunnel connect: warning: --insecure: the relay's TLS certificate is not checked; "
            "anyone on the path can read the token\n");
    for (const auto& text : f.exposes) {
        auto e = relay::parse_expose(text);
        if (!e) return report(e.error());
        o.exposes.push_back(std::move(*e));
    }
    for (const auto& text : f.expose_tcp) {
        auto e = relay::parse_expose_tcp(text);
        if (!e) return report(e.error());
        o.exposes.push_back(std::move(*e));
    }
    if (auto access = relay::apply_access(o.exposes, f.access); !access)
        return report(access.error());
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
    o.on_event = [json = f.json](const relay::relay_event& ev) { print_event(ev, json); };

    // Each session keeps its lease across reconnects, and releases it when
    // we stop on a signal (relay/relay_sessions.hpp).
    relay::relay_sessions_options so;
    so.client = std::move(o);
    so.relays = std::move(*relays);
    so.on_switch = [json = f.json](const relay::relay_switch& s) { print_switch(s, json); };
    so.probe_interval = *probe;
    if (!f.ca_file.empty()) so.probe_ws.ca_file = f.ca_file;
    so.probe_ws.insecure = f.insecure;
    // Token renewal follows the session in charge (set once it exists).
    auto follow = std::make_shared<std::function<void(std::shared_ptr<forward::supervisor>)>>();
    so.on_new_session = [follow](std::shared_ptr<forward::supervisor> s) {
        if (*follow) (*follow)(std::move(s));
    };
    asio::io_context io;
    auto sessions = relay::relay_sessions::create(io.get_executor(), std::move(so));
    if (!sessions) return report(sessions.error());

    relay::token_renewal renewal(
        io.get_executor(), source, (*sessions)->current(),
        [json = f.json](const relay::token_renewed& r) {
            const auto exp =
                std::chrono::duration_cast<std::chrono::seconds>(r.expires.time_since_epoch())
                    .count();
            if (json) {
                fmt::print(stdout, "{}\n",
                           nlohmann::json{{"event", "token_renewed"},
                                          {"expires", exp},
                                          {"reason", r.file_changed ? "file_changed" : "expiry"}}
                               .dump());
                std::fflush(stdout);
            } else {
                spdlog::info("attaching again with a {} token (it expires in {} s)",
                             r.file_changed ? "changed" : "renewed",
                             exp - std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
            }
        });
    *follow = [&renewal](std::shared_ptr<forward::supervisor> s) { renewal.follow(std::move(s)); };
    // With --no-reconnect the session cannot be swapped: the tunnel ends at
    // the token's expiry, as before.
    if (!f.no_reconnect) core::spawn(io.get_executor(), renewal.run(), "token renewal");

    bool by_signal = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer grace(io);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        by_signal = true;
        renewal.stop();
        // Stopping for good: the relay releases the names now (a close
        // frame, sent within the grace below).
        (*sessions)->stop(true);
        grace.expires_after(std::chrono::milliseconds(500));
        grace.async_wait([&](boost::system::error_code e) {
            if (!e) io.stop();
        });
    });
    std::optional<core::result<void>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await (*sessions)->run();
        (*sessions)->stop(false);
        renewal.stop();
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
        "      --expose llm=127.0.0.1:11434 --expose web=127.0.0.1:8080 --access llm=token\n"
        "Prints each name's public URL. The relay's SSH host key is recorded on first use in\n"
        "~/.config/tunnel/relay_known_hosts (its fingerprint is printed then); a changed key is\n"
        "refused. With --access token, visitors need a token from `tunnel token --visitor`.");
    cmd->add_option("url", flags->url,
                    "The relay's attach URL: wss://HOST[:PORT]/v1/tunnel (ws:// on loopback, or "
                    "with --allow-plaintext)")
        ->required();
    cmd->add_option("--relay", flags->relays,
                    "Another relay's attach URL, tried in order when the one before is down or "
                    "lost; the first is preferred and returned to when it answers again "
                    "(repeatable)");
    cmd->add_option("--relay-probe-interval", flags->relay_probe_interval,
                    "While on another relay, how often the first one is probed")
        ->capture_default_str();
    auto* token_file = cmd->add_option(
        "--token-file", flags->token_file,
        "File holding the bearer token (JWT) the relay issued; re-read when it changes");
    auto* token_command =
        cmd->add_option("--token-command", flags->token_command,
                        "Shell command that prints a fresh token; run at start and again "
                        "before the token expires, so the tunnel outlives it");
    token_file->excludes(token_command);
    token_command->excludes(token_file);
    cmd->add_option("--token-command-timeout", flags->token_command_timeout,
                    "How long --token-command may take")
        ->capture_default_str();
    cmd->add_option("--expose", flags->exposes,
                    "NAME=HOST:PORT: publish NAME, carried to HOST:PORT here (repeatable)");
    cmd->add_option("--expose-tcp", flags->expose_tcp,
                    "NAME=HOST:PORT: publish NAME as raw TCP (SSH, a database) on a port the "
                    "relay assigns (printed), or by TLS SNI (repeatable)");
    cmd->add_option("--ca-file", flags->ca_file,
                    "Trust the CA certificates (PEM) in this file, e.g. a self-signed relay's");
    cmd->add_flag("--insecure", flags->insecure,
                  "Do not verify the relay's TLS certificate (throwaway tests only)");
    cmd->add_flag("--allow-plaintext", flags->allow_plaintext,
                  "Allow ws:// to a host that is not loopback (the token travels in cleartext)");
    cmd->add_option("--access", flags->access.access,
                    "Who may call the names: public, token, basic or ip; NAME=MODE for one name "
                    "(repeatable; default: the relay decides, normally public)");
    cmd->add_option("--allow-ip", flags->access.allow_ips,
                    "CIDR networks let in by --access ip, comma-separated (repeatable)");
    cmd->add_option("--htpasswd", flags->access.htpasswd_file,
                    "user:hash lines (yescrypt or bcrypt) for --access basic");
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
                  "One JSON event per line on stdout (attached, host_key_recorded, published, "
                  "refused, token_renewed, relay_switched)");
    cmd->callback([flags, &run] { run = [flags] { return run_connect(*flags); }; });
}

}  // namespace tunnel::cli
