// tunnel up LINKS.yaml: run every link of the file until SIGINT/SIGTERM or `tunnel down`.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/spawn.hpp"
#include "exec_plan.hpp"
#include "link/control_server.hpp"
#include "link/link_config.hpp"
#include "link/link_metrics.hpp"
#include "link/link_resolve.hpp"
#include "link/manager.hpp"
#include "link/unit_file.hpp"
#include "observe/metrics.hpp"
#include "observe/status_listener.hpp"

namespace tunnel::cli {

namespace {

// `tunnel up --exit-on-escalate` exits with this when a link escalates.
constexpr int exit_on_escalate_status = 3;

struct up_flags {
    std::string file;
    std::string control;
    std::string status_addr;
    std::string status_token_file;
    bool install = false;
    std::string install_unit;  // --unit-scope: "", "user" or "system"
    std::string unit_dir;
    bool check = false;
    bool exit_on_escalate = false;
    ssh::client_flags connection;
};

// --install-unit: a hardened unit for this file, written where systemd reads it.
int install_unit(const up_flags& f) {
    namespace fs = std::filesystem;
    link::unit_request r;
    const bool root = ::geteuid() == 0;
    if (f.install_unit == "system" || (f.install_unit.empty() && root))
        r.scope = link::unit_scope::system;
    std::error_code ec;
    r.tunnel_binary = program_path();
    if (r.tunnel_binary.empty())
        return report({core::errc::io_error, "cannot find this program's path"});
    r.links_file = fs::absolute(f.file, ec).lexically_normal().string();
    if (!f.status_addr.empty()) r.status_addr = f.status_addr;
    std::string dir = f.unit_dir;
    if (r.scope == link::unit_scope::system) {
        if (dir.empty()) dir = "/etc/systemd/system";
        // Least privilege: the unit runs as the file's owner (whose keys it names).
        struct stat st {};
        if (::stat(r.links_file.c_str(), &st) == 0 && st.st_uid != 0)
            if (const passwd* pw = ::getpwuid(st.st_uid)) r.user = pw->pw_name;
    } else if (dir.empty()) {
        const char* xdg = std::getenv("XDG_CONFIG_HOME");
        const char* home = std::getenv("HOME");
        if ((!xdg || !*xdg) && (!home || !*home))
            return report({core::errc::invalid_argument,
                           "--install-unit (user): neither XDG_CONFIG_HOME nor HOME is set; give "
                           "--unit-dir DIR"});
        dir = xdg && *xdg ? fmt::format("{}/systemd/user", xdg)
                          : fmt::format("{}/.config/systemd/user", home);
    }
    auto path = link::install_unit(r, dir);
    if (!path) return report(path.error());
    const std::string name = link::unit_name(r.links_file);
    const std::string ctl = r.scope == link::unit_scope::system ? "systemctl" : "systemctl --user";
    fmt::print("wrote {}\nstart it now and at boot:\n  {} daemon-reload && {} enable --now {}\n",
               *path, ctl, ctl, name);
    if (r.scope == link::unit_scope::system)
        fmt::print("its control socket: tunnel ls --control /run/{}/control.sock\n",
                   name.substr(0, name.size() - 8));
    return 0;
}

// A named coroutine (not a capturing lambda: g++ 12, STYLE).
asio::awaitable<void> drain_then_stop(std::shared_ptr<link::control_server> server,
                                      std::shared_ptr<link::manager> m) {
    co_await server->drain(std::chrono::seconds(5));
    m->stop();
}

int run_up(const up_flags& f) {
    auto file = link::load_links_file(f.file);
    if (!file) return report(file.error());
    const auto ctx = ssh::process_resolve_context();
    std::vector<std::vector<link::resolved_transport>> transports;
    for (const auto& l : file->links) {
        auto r = link::resolve_transports(l, f.connection, ctx);
        if (!r) return report({r.error().code, fmt::format("{}: {}", f.file, r.error().message)});
        transports.push_back(std::move(*r));
    }
    if (f.install) return install_unit(f);
    std::string control = f.control.empty() ? file->control.socket : f.control;
    if (control.empty()) {
        auto d = link::default_control_path();
        if (!d) return report(d.error());
        control = *d;
    }
    if (f.check) {
        fmt::print("{}: {} link(s) OK; control socket {}\n", f.file, file->links.size(), control);
        for (std::size_t i = 0; i < file->links.size(); ++i)
            for (const auto& t : transports[i])
                if (!t.options)
                    fmt::print("  {}: transport {} will not run: {}\n", file->links[i].name,
                               t.config.name, t.unsupported);
        return 0;
    }
    // --status-addr beats the file's control.status_addr.
    observe::status_listener_options status;
    status.address = f.status_addr.empty() ? file->control.status_addr : f.status_addr;
    status.address_flag =
        f.status_addr.empty() ? f.file + ": control.status_addr" : "--status-addr";
    status.token_file = f.status_token_file;
    status.title = "tunnel up status endpoints";
    if (status.address.empty() && !status.token_file.empty())
        return report({core::errc::invalid_argument,
                       "--status-token-file goes with --status-addr HOST:PORT (or "
                       "control.status_addr in the file)"});

    // Before any listener is bound: a second manager is told about the first.
    if (auto free = link::control_server::check_available(control); !free)
        return report(free.error());
    asio::io_context io;
    auto m = link::manager::create(io.get_executor(), *file, std::move(transports));
    if (!m) return report(m.error());
    auto server = link::control_server::open(io.get_executor(), control, *m);
    if (!server) return report(server.error());
    (*server)->plan_command_lines_with(plan_pooled_exec);  // from the `tunnel` front
    observe::metrics_registry registry;  // outlives the status listener (closed in run below)
    std::shared_ptr<observe::admin_http_server> status_server;
    if (!status.address.empty()) {
        auto opened = observe::open_status_listener(
            io.get_executor(), status, link::link_status_endpoints(*m, registry), &registry);
        if (!opened) return report(opened.error());
        status_server = std::move(*opened);
        spdlog::info("status endpoints on {} (port {})", status.address, status_server->port());
    }
    for (const auto& l : (*m)->links())
        for (std::size_t i = 0; i < file->links.size(); ++i)
            if (file->links[i].name == l->name())
                for (std::size_t k = 0; k < file->links[i].forwards.size(); ++k)
                    if (auto port = l->local_port(k))
                        spdlog::info("link {}: {} listening on port {}", l->name(),
                                     file->links[i].forwards[k].text, port);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    // Pooled execs in flight finish first (up to 5 s); new ones already fall back.
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        core::spawn(io.get_executor(), drain_then_stop(*server, *m), "drain pooled execs");
    });
    // --exit-on-escalate: a link that ran out of recovery steps stops the manager.
    int exit_code = 0;
    if (f.exit_on_escalate)
        (*m)->subscribe(
            [&io, &exit_code, weak = std::weak_ptr<link::manager>(*m)](const std::string& line) {
                if (exit_code != 0) return;
                const auto e = nlohmann::json::parse(line, nullptr, false);
                if (!e.is_object() || e.value("type", std::string()) != "escalated") return;
                exit_code = exit_on_escalate_status;
                spdlog::error("link {} escalated; exiting (--exit-on-escalate)",
                              e.value("link", std::string()));
                asio::post(io, [weak] {
                    if (auto mgr = weak.lock()) mgr->stop();
                });
            });
    asio::steady_timer grace(io);
    run_until_done(io, [&]() -> asio::awaitable<void> {
        (*server)->start();
        if (status_server) status_server->start();
        (*m)->start();
        fmt::print("tunnel up: {} link(s); control socket {}\n", (*m)->links().size(),
                   (*server)->path());
        std::fflush(stdout);
        co_await (*m)->wait_stopped();
        (*server)->stop();
        if (status_server) status_server->close();
        signals.cancel();
        // Connects in flight end at their own deadline: do not wait for them.
        grace.expires_after(std::chrono::milliseconds(300));
        grace.async_wait([&](boost::system::error_code e) {
            if (!e) io.stop();
        });
    });
    return exit_code;
}

}  // namespace

void add_up_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<up_flags>();
    auto* cmd = app.add_subcommand(
        "up", "Keep named links up over redundant transports (the connection manager)");
    cmd->footer(
        "Example:\n"
        "  tunnel up ~/.config/tunnel/links.yaml\n"
        "  tunnel ls; tunnel switch db tcp; tunnel events; tunnel down\n"
        "See docs/link.md for the file. Runs until SIGINT/SIGTERM or `tunnel down` (exit 0).\n"
        "Exit status: 2 bad file or usage; 3 a link escalated (with --exit-on-escalate); 255 a\n"
        "listener or the control socket failed.");
    cmd->add_option("file", flags->file, "links.yaml")->required();
    cmd->add_option("--control", flags->control,
                    "Control socket path (default: control.socket in the file, else "
                    "$XDG_RUNTIME_DIR/tunnel/control.sock)");
    cmd->add_option("--status-addr", flags->status_addr,
                    "Serve /healthz, /metrics (Prometheus) and /api/v1/links (JSON) on HOST:PORT, "
                    "e.g. 127.0.0.1:9091 (default: control.status_addr in the file; off loopback "
                    "--status-token-file is required)");
    cmd->add_option("--status-token-file", flags->status_token_file,
                    "Bearer token the status endpoints require (a file of at least 16 characters)");
    cmd->add_flag("--install-unit", flags->install,
                  "Write a hardened systemd unit that runs this file, then exit (docs/link.md)");
    cmd->add_option("--unit-scope", flags->install_unit,
                    "user (~/.config/systemd/user) or system (/etc/systemd/system, run as the "
                    "file's owner); default: system as root, else user")
        ->check(CLI::IsMember({"user", "system"}));
    cmd->add_option("--unit-dir", flags->unit_dir,
                    "Directory for --install-unit instead of systemd's default");
    cmd->add_flag("--exit-on-escalate", flags->exit_on_escalate,
                  "Exit with status 3 when a link runs out of recovery steps (docs/link.md)");
    cmd->add_flag("--check", flags->check, "Validate the file and resolve every target, then exit");
    cmd->add_option("-F", flags->connection.config_file, "ssh_config file to read");
    cmd->add_option("-o", flags->connection.options,
                    "ssh_config Key=Value for every link (beats the file's options)")
        ->take_all()
        ->allow_extra_args(false);
    cmd->callback([flags, &run] { run = [flags] { return run_up(*flags); }; });
}

}  // namespace tunnel::cli
