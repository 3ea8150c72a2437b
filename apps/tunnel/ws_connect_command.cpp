// tunnel ws-connect URL: stdio <-> WebSocket bridge for ssh's ProxyCommand.
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::cli {

namespace {

struct ws_connect_flags {
    std::string url;
    std::string token_file;
    std::string ca_file;
    bool insecure = false;
    bool allow_plaintext = false;
    std::string connect_timeout = "15s";
    std::string idle_timeout = "30s";
};

int run_ws_connect(const ws_connect_flags& f) {
    auto url = transport::parse_ws_url(f.url);
    if (!url) return report(url.error());
    if (auto plain = transport::check_plaintext(*url, !f.token_file.empty(), f.allow_plaintext);
        !plain)
        return report(plain.error());
    transport::ws_options o;
    o.allow_plaintext = f.allow_plaintext;
    if (!f.token_file.empty()) {
        auto token = transport::read_token_file(f.token_file);
        if (!token) return report(token.error());
        o.token = std::move(*token);
    }
    if (!f.ca_file.empty()) o.ca_file = f.ca_file;
    o.insecure = f.insecure;
    if (f.insecure && url->tls)
        fmt::print(
            stderr,
            "tunnel ws-connect: warning: --insecure: the relay's TLS certificate is not checked; "
            "anyone on the path can read the token\n");
    auto connect_timeout = core::parse_duration(f.connect_timeout);
    if (!connect_timeout)
        return report({core::errc::invalid_argument,
                       "--connect-timeout: " + connect_timeout.error().message});
    auto idle_timeout = core::parse_duration(f.idle_timeout);
    if (!idle_timeout)
        return report(
            {core::errc::invalid_argument, "--idle-timeout: " + idle_timeout.error().message});
    if (idle_timeout->count() < 1000)
        return report({core::errc::invalid_argument, "--idle-timeout: must be at least 1s"});
    o.connect_timeout = *connect_timeout;
    o.idle_timeout = *idle_timeout;

    // ssh closing the pipe is the normal end: an error on write, not a signal.
    std::signal(SIGPIPE, SIG_IGN);
    // The bridge owns (and closes) what it is given: hand it copies of stdio.
    const int in = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    const int out = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (in < 0 || out < 0) return report({core::errc::io_error, "cannot duplicate stdin/stdout"});

    asio::io_context io;
    std::optional<core::error> failure;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        auto ws = co_await transport::websocket_client::connect(io.get_executor(), *url, o);
        if (!ws) {
            failure = ws.error();
            ::close(in);
            ::close(out);
            co_return;
        }
        auto r = co_await (*ws)->bridge(in, out);
        if (!r) failure = r.error();
    });
    return failure ? report(*failure) : 0;
}

}  // namespace

void add_ws_connect_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<ws_connect_flags>();
    auto* cmd = app.add_subcommand(
        "ws-connect", "Bridge stdin/stdout to a relay's WebSocket (for ssh ProxyCommand)");
    cmd->footer(
        "Example:\n"
        "  ssh -o ProxyCommand='tunnel ws-connect wss://relay.example.com/v1/tunnel --token-file "
        "~/.config/tunnel/token' \\\n"
        "      -N -R llm:80:127.0.0.1:11434 alice@relay.example.com\n"
        "The token is sent as 'Authorization: Bearer'; it never appears in the URL or in logs.");
    cmd->add_option("url", flags->url, "ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH")
        ->required();
    cmd->add_option("--token-file", flags->token_file, "File holding the bearer token (JWT)");
    cmd->add_option("--ca-file", flags->ca_file,
                    "Trust the CA certificates (PEM) in this file, e.g. a self-signed relay's");
    cmd->add_flag("--insecure", flags->insecure,
                  "Do not verify the relay's TLS certificate (throwaway tests only)");
    cmd->add_flag("--allow-plaintext", flags->allow_plaintext,
                  "Send the token over ws:// to a host that is not loopback (cleartext)");
    cmd->add_option("--connect-timeout", flags->connect_timeout,
                    "Deadline for TCP, TLS and the upgrade")
        ->capture_default_str();
    cmd->add_option("--idle-timeout", flags->idle_timeout,
                    "Give up when the relay sends nothing (not even a pong) for this long; pings "
                    "at half of it")
        ->capture_default_str();
    cmd->callback([flags, &run] { run = [flags] { return run_ws_connect(*flags); }; });
}

}  // namespace tunnel::cli
