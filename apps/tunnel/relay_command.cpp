// tunnel relay --config FILE | --check-config FILE | --dev ... | --profile dev|prod ...: the
// relay server.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_profile.hpp"
#include "relay/relay_server.hpp"

namespace tunnel::cli {

namespace {

struct relay_flags {
    std::string config;
    std::string check_config;
    bool dev = false;
    std::string listen = "127.0.0.1:8080";
    std::string admin_listen = "127.0.0.1:9090";
    std::string jwt_secret_file;
    std::string profile;
    std::vector<std::string> sets;
    bool listen_given = false;
    bool admin_listen_given = false;
};

// --profile: the preset, the file (--config or --check-config) over it, the
// --set pairs, then the flags given.
core::result<relay::relay_config> profile_config(const relay_flags& f, const std::string& file) {
    auto p = relay::parse_relay_profile(f.profile);
    if (!p) return tl::unexpected(p.error());
    std::string text;
    if (!file.empty()) {
        std::ifstream in(file);
        if (!in)
            return core::fail(core::errc::not_found,
                              fmt::format("{}: cannot read the relay config", file));
        std::stringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
    }
    relay::relay_flag_overrides o;
    if (f.listen_given) o.listen = f.listen;
    if (f.admin_listen_given) o.admin_listen = f.admin_listen;
    o.jwt_secret_file = f.jwt_secret_file;
    const std::string source = file.empty() ? fmt::format("profile {}", f.profile)
                                            : fmt::format("{} (over profile {})", file, f.profile);
    return relay::profile_relay_config(*p, text, source, f.sets, o);
}

int run_relay(const relay_flags& f) {
    if (!f.profile.empty() && f.dev)
        return report(core::error{core::errc::invalid_argument,
                                  "--dev is --profile dev with its flags; give one of them"});
    if (f.profile.empty() && !f.sets.empty())
        return report(core::error{core::errc::invalid_argument,
                                  "--set needs --profile dev|prod (the values it overrides)"});
    if (!f.check_config.empty() && !f.profile.empty()) {
        auto c = profile_config(f, f.check_config);
        if (!c) {
            fmt::print(stderr, "{}\n", c.error().message);
            return 1;
        }
        fmt::print("{}: OK (over profile {})\n", f.check_config, f.profile);
        return 0;
    }
    if (!f.check_config.empty()) {
        auto c = relay::load_relay_config(f.check_config);
        if (!c) {
            fmt::print(stderr, "{}\n", c.error().message);
            return 1;
        }
        fmt::print("{}: OK\n", f.check_config);
        return 0;
    }
    core::result<relay::relay_config> config =
        f.dev                ? relay::dev_config(f.listen, f.admin_listen, f.jwt_secret_file)
        : !f.profile.empty() ? profile_config(f, f.config)
        : f.config.empty()   ? core::result<relay::relay_config>(tl::unexpected(core::error{
                                 core::errc::invalid_argument,
                                 "give --config FILE, --check-config FILE, --profile dev|prod or "
                                   "--dev (see 'tunnel relay --help')"}))
                             : relay::load_relay_config(f.config);
    if (!config) return report(config.error());
    const auto described = relay::describe(*config);
    // Print the addresses as configured (the ports as bound): "0.0.0.0" / "[::]" mean every
    // interface.
    auto shown_host = [](const relay::listen_address& a) {
        if (a.host.empty()) return std::string("0.0.0.0");
        return a.host.find(':') != std::string::npos ? fmt::format("[{}]", a.host) : a.host;
    };
    const std::string public_host = shown_host(config->listen);
    const std::string admin_host = shown_host(config->admin_listen);

    // The config as loaded (before create resolves anything): what a
    // reload (SIGHUP) compares the re-read file with.
    auto running = std::make_shared<relay::relay_config>(*config);
    asio::io_context io;
    // Taken before the ports are printed: a SIGHUP from then on reloads
    // (below) instead of ending the process.
    asio::signal_set hangups(io, SIGHUP);
    auto server = relay::relay_server::create(io, std::move(*config));
    if (!server) return report(server.error());
    auto& s = **server;
    const char* scheme = s.tls() ? "https" : "http";
    fmt::print("host key: {}\n", s.host_key_fingerprint());
    fmt::print("public: {}://{}:{}\n", scheme, public_host, s.public_port());
    fmt::print("admin: http://{}:{}\n", admin_host, s.admin_port());
    if (f.dev) {
        fmt::print("dev mode (loopback only, plain HTTP, permissive limits):\n");
        for (const auto& line : described) fmt::print("  {}\n", line);
    } else if (!f.profile.empty()) {
        fmt::print("profile {}{}:\n", f.profile,
                   f.config.empty() ? "" : fmt::format(" under {}", f.config));
        for (const auto& line : described) fmt::print("  {}\n", line);
    }
    std::fflush(stdout);

    // A file-size limit (RLIMIT_FSIZE) on the audit log must be a write
    // error (EFBIG: attaches refused, counted) rather than a kill.
    std::signal(SIGXFSZ, SIG_IGN);
    s.start();
    // The first signal drains (relay_server::shutdown); a second one closes at
    // once. Either way the relay closes everything it owns, so run() returns
    // by itself once the last coroutine has finished.
    asio::signal_set signals(io, SIGTERM, SIGINT);
    bool stopping = false;
    signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        stopping = true;
        hangups.cancel();
        spdlog::info("signal {}: draining (a second signal closes at once)", sig);
        s.shutdown([&signals] { signals.cancel(); });
        signals.async_wait([&](boost::system::error_code again, int sig2) {
            if (again) return;
            spdlog::warn("signal {} again: closing at once", sig2);
            s.close();
        });
    });
    // SIGHUP: re-read the config the way it was read at start (the file,
    // over --profile, with --set and the flags) and apply what may change
    // live (docs/relay.md "Reloading the configuration").
    std::function<void()> wait_hangup = [&] {
        hangups.async_wait([&](boost::system::error_code ec, int) {
            if (ec || stopping) return;
            spdlog::info("SIGHUP: reloading the configuration");
            const core::result<relay::relay_config> next =
                f.dev ? relay::dev_config(f.listen, f.admin_listen, f.jwt_secret_file)
                : !f.profile.empty() ? profile_config(f, f.config)
                                     : relay::load_relay_config(f.config);
            if (auto applied = s.reload(*running, next); applied) *running = *next;
            wait_hangup();
        });
    };
    wait_hangup();
    io.run();
    // Nothing is left on the io_context: the relay's state goes before it does.
    server->reset();
    return 0;
}

}  // namespace

void add_relay_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<relay_flags>();
    auto* cmd = app.add_subcommand(
        "relay", "Run the relay: publish local services through SSH over WebSocket");
    cmd->add_option("--config", f->config, "Relay configuration (YAML; see docs/relay.md)");
    cmd->add_option("--check-config", f->check_config,
                    "Validate a configuration file and exit 0 (valid) or 1");
    cmd->add_flag("--dev", f->dev,
                  "No config: loopback only, plain HTTP, an ephemeral host key, permissive limits");
    cmd->add_option("--profile", f->profile,
                    "A preset of every setting: dev (loopback, plain HTTP, permissive limits) or "
                    "prod (TLS, audit log, files under /etc/tunnel); --config, --set and the "
                    "flags below override it key by key")
        ->check(CLI::IsMember({"dev", "prod"}));
    cmd->add_option("--set", f->sets,
                    "With --profile: override one setting, KEY=VALUE with a dotted key, e.g. "
                    "limits.tenant_rps=200 (repeatable; after --config)")
        ->allow_extra_args(false);
    cmd->add_option("--listen", f->listen, "Dev mode or --profile: public listener address")
        ->capture_default_str();
    cmd->add_option("--admin-listen", f->admin_listen,
                    "Dev mode or --profile: admin listener address")
        ->capture_default_str();
    cmd->add_option("--jwt-secret-file", f->jwt_secret_file,
                    "Dev mode or --profile: HS256 secret for tunnel tokens");
    cmd->footer(
        "Examples:\n"
        "  tunnel relay --dev --listen 127.0.0.1:8080 --admin-listen 127.0.0.1:9090 "
        "--jwt-secret-file dev.secret\n"
        "  tunnel relay --check-config /etc/tunnel/relay.yaml\n"
        "  tunnel relay --config /etc/tunnel/relay.yaml\n"
        "  tunnel relay --profile prod --config /etc/tunnel/relay.yaml --set "
        "limits.tenant_rps=200\n"
        "  tunnel relay --profile dev --jwt-secret-file dev.secret --set audit_log=audit.jsonl");
    cmd->callback([f, cmd, &run] {
        f->listen_given = cmd->count("--listen") > 0;
        f->admin_listen_given = cmd->count("--admin-listen") > 0;
        run = [f] { return run_relay(*f); };
    });
}

}  // namespace tunnel::cli
