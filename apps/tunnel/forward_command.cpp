// tunnel forward [opts] TARGET -L SPEC -R SPEC -D SPEC: supervised forwards.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "core/terminal_prompt.hpp"
#include "forward/status_server.hpp"
#include "forward/supervisor.hpp"

namespace tunnel::cli {

namespace {

struct forward_flags {
    ssh::client_flags connection;
    std::string target;
    std::vector<std::string> local, remote, dynamic;
    std::string keepalive;
    std::optional<int> keepalive_count;
    bool no_reconnect = false;
    std::optional<unsigned> max_retries;
    bool exit_on_forward_failure = false;
    std::string status_addr;
    std::string status_token_file;
    std::string socks_auth_file;
    std::string outage_wait;
};

core::result<std::chrono::milliseconds> duration_flag(const char* name, const std::string& text) {
    auto d = core::parse_duration(text);
    if (!d)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: {}", name, d.error().message));
    return *d;
}

int run_forward(const forward_flags& f) {
    forward::supervisor_options o;
    const std::pair<const std::vector<std::string>*, forward::forward_kind> groups[] = {
        {&f.local, forward::forward_kind::local},
        {&f.remote, forward::forward_kind::remote},
        {&f.dynamic, forward::forward_kind::dynamic}};
    for (const auto& [texts, kind] : groups) {
        for (const auto& text : *texts) {
            auto spec = forward::parse_forward_spec(kind, text);
            if (!spec) return report(spec.error());
            if (auto p = forward::check_privileged_port(*spec, ::geteuid()); !p)
                return report(p.error());
            o.forwards.push_back(std::move(*spec));
        }
    }
    if (o.forwards.empty())
        return report(
            {core::errc::invalid_argument,
             "nothing to forward: give at least one -L, -R or -D (see 'tunnel forward --help')"});
    if (!f.socks_auth_file.empty()) {
        auto creds = forward::load_socks_credentials(f.socks_auth_file);
        if (!creds) return report(creds.error());
        o.socks_auth = std::move(*creds);
    }
    if (!f.outage_wait.empty()) {
        auto d = duration_flag("--outage-wait", f.outage_wait);
        if (!d) return report(d.error());
        o.outage_wait = *d;
    }

    auto target = resolve_target(f.connection, f.target);
    if (!target) return report(target.error());
    // Like ssh -N: no session channel, so nothing to ask agent forwarding on.
    if (target->forward_agent && f.connection.forward_agent == true)
        fmt::print(stderr,
                   "tunnel: -A has no effect here: tunnel forward runs nothing on the host, so "
                   "no program there can use the agent (as with ssh -N -A)\n");
    target->forward_agent.reset();
    // Keepalives are what notice a peer that vanished without a word: on by
    // default here (15 s x 3), unlike ssh.
    if (!f.keepalive.empty()) {
        auto d = duration_flag("--keepalive", f.keepalive);
        if (!d) return report(d.error());
        target->server_alive_interval = std::chrono::duration_cast<std::chrono::seconds>(*d);
        if (d->count() > 0 && target->server_alive_interval.count() == 0)
            target->server_alive_interval = std::chrono::seconds(1);
    } else if (target->server_alive_interval.count() == 0) {
        target->server_alive_interval = std::chrono::seconds(15);
    }
    if (f.keepalive_count) target->server_alive_count_max = *f.keepalive_count;
    o.target = std::move(*target);
    o.reconnect = !f.no_reconnect;
    o.exit_on_forward_failure = f.exit_on_forward_failure;
    if (f.max_retries) o.backoff.max_attempts = *f.max_retries + 1;
    o.on_remote_listening = [](const forward::forward_stats& fs) {
        if (fs.spec.listen.port == 0 && fs.bound_port)
            fmt::print(stdout, "Allocated port {} for remote forward to {}\n", *fs.bound_port,
                       fs.spec.target.to_string());
        std::fflush(stdout);
        spdlog::info("{} listening on the server's port {}", fs.spec.text,
                     fs.bound_port.value_or(0));
    };

    asio::io_context io;
    auto sup = forward::supervisor::create(io.get_executor(), std::move(o));
    if (!sup) return report(sup.error());

    std::shared_ptr<observe::admin_http_server> status;
    if (!f.status_addr.empty()) {
        std::weak_ptr<forward::supervisor> weak = *sup;
        auto reads = std::make_shared<forward::forward_status>([weak] {
            auto s = weak.lock();
            return s ? s->snapshot() : forward::supervisor_stats{};
        });
        auto opened = forward::open_status_server(io.get_executor(),
                                                  {f.status_addr, f.status_token_file}, reads);
        if (!opened) return report(opened.error());
        status = *opened;
        status->start();
    } else if (!f.status_token_file.empty()) {
        return report({core::errc::invalid_argument,
                       "--status-token-file goes with --status-addr HOST:PORT"});
    }

    bool by_signal = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer grace(io);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        by_signal = true;
        (*sup)->stop();
        if (status) status->close();
        // Let pumps close their sockets, then leave even if a connect is in flight.
        grace.expires_after(std::chrono::milliseconds(200));
        grace.async_wait([&](boost::system::error_code e) {
            if (!e) io.stop();
        });
    });

    std::optional<core::result<void>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await (*sup)->run();
        (*sup)->stop();
        if (status) status->close();
        // Nothing may stay pending for io.run() to return: the signal wait and
        // its grace timer end here too.
        signals.cancel();
        grace.cancel();
    });
    if (by_signal) return 0;
    if (outcome && !*outcome) return report(outcome->error());
    return 0;
}

}  // namespace

void add_forward_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<forward_flags>();
    auto* cmd = app.add_subcommand("forward",
                                   "Forward ports over SSH (-L, -R, -D), reconnecting by itself");
    cmd->footer(
        "Examples:\n"
        "  tunnel forward db-bastion -L 5432:db.internal:5432\n"
        "  tunnel forward -o ServerAliveInterval=5 relay.example.com -R 0:127.0.0.1:8080 "
        "--status-addr 127.0.0.1:9100\n"
        "  tunnel forward laptop-gw -D 1080 --socks-auth-file ~/.config/socks.pass\n"
        "Specs as ssh(1): -L [bind:]port:host:hostport, -R [bind:]port:host:hostport (port 0: the "
        "server picks),\n"
        "-D [bind:]port; Unix socket paths where OpenSSH allows them. Runs until SIGINT/SIGTERM "
        "(exit 0).\n"
        "Exit status: 2 bad usage; 255 connection, auth, host-key or listener failure.");
    add_connection_flags(*cmd, flags->connection);
    add_agent_flags(*cmd, flags->connection);
    auto repeated = [&](const char* name, std::vector<std::string>& into, const char* help) {
        cmd->add_option(name, into, help)->take_all()->allow_extra_args(false);
    };
    repeated("-L", flags->local,
             "Local forward [bind_address:]port:host:hostport; may be repeated");
    repeated("-R", flags->remote,
             "Remote forward [bind_address:]port:host:hostport; may be repeated");
    repeated("-D", flags->dynamic, "SOCKS4a/5 proxy on [bind_address:]port; may be repeated");
    cmd->add_option("--keepalive", flags->keepalive,
                    "Keepalive interval (ServerAliveInterval; default 15s here, 0 disables)");
    cmd->add_option_function<int>(
           "--keepalive-count", [f = flags.get()](int n) { f->keepalive_count = n; },
           "Unanswered keepalives before the link is declared dead (ServerAliveCountMax, default "
           "3)")
        ->check(CLI::Range(1, 1000));
    cmd->add_flag("--no-reconnect", flags->no_reconnect,
                  "Exit when the connection is lost instead of reconnecting");
    cmd->add_option_function<unsigned>(
        "--max-retries", [f = flags.get()](unsigned n) { f->max_retries = n; },
        "Give up after this many failed reconnection attempts in a row (default: never)");
    cmd->add_flag("--exit-on-forward-failure", flags->exit_on_forward_failure,
                  "Exit when a forward cannot be set up (like ssh -o ExitOnForwardFailure=yes)");
    cmd->add_option("--status-addr", flags->status_addr,
                    "Serve /healthz, /metrics (Prometheus) and /status (JSON) on HOST:PORT, e.g. "
                    "127.0.0.1:9100 (off loopback --status-token-file is required)");
    cmd->add_option("--status-token-file", flags->status_token_file,
                    "Bearer token the status endpoints require (except /healthz): a file holding "
                    "at least 16 random bytes, e.g. `openssl rand -hex 32 > FILE`");
    cmd->add_option(
        "--socks-auth-file", flags->socks_auth_file,
        "Require SOCKS5 username/password: a file holding one line user:password (mode 600)");
    cmd->add_option(
        "--outage-wait", flags->outage_wait,
        "How long a new local connection waits for a lost session to come back (default 10s)");
    cmd->add_option("target", flags->target, "[user@]host[:port] or an ssh_config alias")
        ->required();
    cmd->callback([flags, &run] { run = [flags] { return run_forward(*flags); }; });
}

}  // namespace tunnel::cli
