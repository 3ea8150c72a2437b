// tunnel ls / status / restart / switch / events / down: requests to a
// running `tunnel up` over its control socket.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "link/control_client.hpp"
#include "link/control_server.hpp"

namespace tunnel::cli {

namespace {

using namespace std::chrono_literals;

struct control_flags {
    std::string control;
    std::string link;
    std::string transport;
    bool json = false;
};

core::result<std::string> control_path(const control_flags& f) {
    if (!f.control.empty()) return f.control;
    return link::default_control_path();
}

std::string fmt_rtt(const nlohmann::json& v) {
    return v.is_number() ? fmt::format("{:.1f}ms", v.get<double>()) : "-";
}

std::string one_line(const nlohmann::json& l) {
    const auto& t = l["transport"];
    const std::string transport =
        t.is_object() ? fmt::format("{}#{}", t.value("name", std::string()), t.value("index", 0))
                      : "-";
    return fmt::format("{:<16} {:<11} {:<18} {:>9} {:>12} {:>12}", l.value("name", std::string()),
                       l.value("state", std::string()), transport, fmt_rtt(l["rtt_ms"]),
                       l["bytes"].value("in", 0ull), l["bytes"].value("out", 0ull));
}

// Sends `request`; prints the reply (JSON or text). 0 on ok, 1 when the manager refused.
int call(const control_flags& f, nlohmann::json request,
         const std::function<void(const nlohmann::json&)>& print_text) {
    auto path = control_path(f);
    if (!path) return report(path.error());
    auto reply = link::control_call(*path, request, 10s);
    if (!reply) return report(reply.error());
    if (!reply->value("ok", false)) {
        fmt::print(stderr, "tunnel: {}\n", reply->value("error", std::string("request refused")));
        return 1;
    }
    if (f.json)
        fmt::print("{}\n", reply->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    else
        print_text(*reply);
    return 0;
}

void print_link_detail(const nlohmann::json& l) {
    fmt::print("{}\n", one_line(l));
    for (const auto& t : l["transports"])
        fmt::print("  {}{} #{} {:<13} {:<11} rtt {:>9}  fails {}/{}  connects {}{}\n",
                   t.value("active", false) ? "*" : " ", t.value("name", std::string()),
                   t.value("index", 0), t.value("type", std::string()),
                   t.value("state", std::string()), fmt_rtt(t["rtt_ms"]),
                   t.value("failure_streak", 0), t.value("probe_failures", 0ull),
                   t.value("connects", 0ull),
                   t.contains("last_error") ? "  (" + t["last_error"].get<std::string>() + ")"
                                            : std::string());
    for (const auto& fw : l["forwards"])
        fmt::print("  {} {} conns {} failures {}\n", fw.value("spec", std::string()),
                   fw.value("state", std::string()), fw.value("connections", 0ull),
                   fw.value("failures", 0ull));
}

void add_control_flag(CLI::App* cmd, control_flags& f) {
    cmd->add_option("--control", f.control,
                    "Control socket of the `tunnel up` to ask (default "
                    "$XDG_RUNTIME_DIR/tunnel/control.sock)");
}

}  // namespace

void add_ls_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd = app.add_subcommand("ls", "List the links of the running `tunnel up`");
    cmd->footer("Example:\n  tunnel ls --json | jq '.links[] | {name, state, rtt_ms}'");
    add_control_flag(cmd, *f);
    cmd->add_flag("--json", f->json, "One JSON object: {\"ok\": true, \"links\": [...]}");
    cmd->callback([f, &run] {
        run = [f] {
            return call(*f, {{"cmd", "ls"}}, [](const nlohmann::json& r) {
                fmt::print("{:<16} {:<11} {:<18} {:>9} {:>12} {:>12}\n", "NAME", "STATE",
                           "TRANSPORT", "RTT", "BYTES_IN", "BYTES_OUT");
                for (const auto& l : r["links"]) fmt::print("{}\n", one_line(l));
            });
        };
    });
}

void add_status_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd = app.add_subcommand("status", "One link of the running `tunnel up`, in detail");
    cmd->footer("Example:\n  tunnel status db");
    add_control_flag(cmd, *f);
    cmd->add_flag("--json", f->json, "Print the reply as JSON");
    cmd->add_option("link", f->link, "Link name")->required();
    cmd->callback([f, &run] {
        run = [f] {
            return call(*f, {{"cmd", "status"}, {"link", f->link}},
                        [](const nlohmann::json& r) { print_link_detail(r["link"]); });
        };
    });
}

void add_restart_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd = app.add_subcommand("restart", "Drop a link's sessions and connect again");
    cmd->footer("Example:\n  tunnel restart db");
    add_control_flag(cmd, *f);
    cmd->add_flag("--json", f->json, "Print the reply as JSON");
    cmd->add_option("link", f->link, "Link name")->required();
    cmd->callback([f, &run] {
        run = [f] {
            return call(*f, {{"cmd", "restart"}, {"link", f->link}},
                        [](const nlohmann::json& r) { print_link_detail(r["link"]); });
        };
    });
}

void add_switch_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd = app.add_subcommand(
        "switch", "Make a transport the preferred one of a link (it moves there once it is up)");
    cmd->footer("Example:\n  tunnel switch db tcp      (a transport's name, or its index from 0)");
    add_control_flag(cmd, *f);
    cmd->add_flag("--json", f->json, "Print the reply as JSON");
    cmd->add_option("link", f->link, "Link name")->required();
    cmd->add_option("transport", f->transport, "Transport name or index")->required();
    cmd->callback([f, &run] {
        run = [f] {
            return call(*f, {{"cmd", "switch"}, {"link", f->link}, {"transport", f->transport}},
                        [](const nlohmann::json& r) { print_link_detail(r["link"]); });
        };
    });
}

void add_events_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd =
        app.add_subcommand("events", "Follow the running `tunnel up`'s events (JSON lines)");
    cmd->footer("Example:\n  tunnel events | jq -c 'select(.type == \"switch\")'");
    add_control_flag(cmd, *f);
    cmd->callback([f, &run] {
        run = [f] {
            auto path = control_path(*f);
            if (!path) return report(path.error());
            auto r = link::control_follow(*path, [](const std::string& line) {
                write_all(1, line + "\n");
                return true;
            });
            if (!r) return report(r.error());
            return 0;
        };
    });
}

void add_down_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<control_flags>();
    auto* cmd = app.add_subcommand("down", "Stop the running `tunnel up`");
    cmd->footer("Example:\n  tunnel down");
    add_control_flag(cmd, *f);
    cmd->callback([f, &run] {
        run = [f] {
            return call(*f, {{"cmd", "down"}},
                        [](const nlohmann::json&) { fmt::print("tunnel up is stopping\n"); });
        };
    });
}

}  // namespace tunnel::cli
