// tunnel: one binary, one subcommand per file. Parse, wire, call libtunnel.
#include <sys/prctl.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iterator>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "observe/log.hpp"
#include "ssh/crypto_warmup.hpp"

namespace tunnel::cli {
// `completion` and the hidden `man` (completion_command.cpp): they walk every
// other subcommand, so main adds them after the rest, and builds all of them
// for these two (their names are not in the table below).
void add_completion_commands(CLI::App& app, command_runner& run);
}  // namespace tunnel::cli

namespace {

// The first word that is neither a global option nor its value: the
// subcommand's name when the command line is well formed.
std::string_view subcommand_word(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--log-format") {
            ++i;  // its value
            continue;
        }
        if (!arg.empty() && arg.front() == '-') continue;
        return arg;
    }
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    using namespace tunnel;
    ssh::skip_crypto_cleanup_at_exit();  // first: before anything initialises OpenSSL
    cli::set_program_path(argc > 0 ? argv[0] : nullptr);
    // The front exec'd us as libexec/tunnel/tunnel-cli: to ps, top, pgrep -x
    // and /proc/PID/comm we are `tunnel` still.
    ::prctl(PR_SET_NAME, "tunnel", 0, 0, 0);
    cli::take_front_notes();
    CLI::App app{"tunnel: reach and operate Linux machines over SSH", "tunnel"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "tunnel 0.1.0");
    std::string log_format = "text";
    int verbosity = 0;
    app.add_option("--log-format", log_format, "Log format on stderr: text or json")
        ->capture_default_str();
    app.add_flag("-v,--verbose", verbosity, "More log output (-v info, -vv debug, -vvv trace)");
    app.footer("Run 'tunnel SUBCOMMAND --help' for a subcommand's options and an example.");

    cli::command_runner run_selected;
    using add_command = void (*)(CLI::App&, cli::command_runner&);
    static constexpr std::pair<std::string_view, add_command> commands[] = {
        {"exec", cli::add_exec_command},
        {"ssh", cli::add_ssh_command},
        {"forward", cli::add_forward_command},
        {"cp", cli::add_cp_command},
        {"sync", cli::add_sync_command},
        {"script", cli::add_script_command},
        {"ws-connect", cli::add_ws_connect_command},
        {"audit", cli::add_audit_command},
        {"token", cli::add_token_command},
        {"apply", cli::add_apply_command},
        {"connect", cli::add_connect_command},
        {"audit-host", cli::add_audit_host_command},
        {"service", cli::add_service_command},
        {"run", cli::add_run_command},
        {"relay", cli::add_relay_command},
        {"deploy", cli::add_deploy_command},
        {"rollback", cli::add_rollback_command},
        {"releases", cli::add_releases_command},
        {"up", cli::add_up_command},
        {"ls", cli::add_ls_command},
        {"status", cli::add_status_command},
        {"restart", cli::add_restart_command},
        {"switch", cli::add_switch_command},
        {"events", cli::add_events_command},
        {"down", cli::add_down_command},
        {"health", cli::add_health_command},
        {"usage", cli::add_usage_command},
        {"ui", cli::add_ui_command},
        {"share", cli::add_share_command},
    };
    // Only the subcommand named on the command line is built: building all of
    // them cost every `tunnel exec` ~1 ms of CPU at start. Without a known
    // name (help, a typo) they all are, so help and suggestions list them.
    const std::string_view named = subcommand_word(argc, argv);
    const auto chosen = std::find_if(std::begin(commands), std::end(commands),
                                     [&](const auto& c) { return c.first == named; });
    if (chosen != std::end(commands)) {
        chosen->second(app, run_selected);
    } else {
        for (const auto& [name, add] : commands) add(app, run_selected);
    }
    cli::add_completion_commands(app, run_selected);

    // -v after the subcommand counts too (`tunnel cp -v ...`, as ssh and scp
    // users type it); only the selected subcommand's flag can fire.
    int subcommand_verbosity = 0;
    for (auto* sub : app.get_subcommands({}))
        if (sub->get_option_no_throw("-v") == nullptr)
            sub->add_flag("-v,--verbose", subcommand_verbosity,
                          "More log output (-v info, -vv debug, -vvv trace; also before the "
                          "subcommand)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string where =
            app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
        fmt::print(stderr, "tunnel{}: {} (see 'tunnel{} --help')\n", where, e.what(), where);
        return cli::exit_usage;
    }
    auto format = observe::parse_log_format(log_format);
    if (!format) return cli::report(format.error());
    observe::setup_logging(*format, verbosity + subcommand_verbosity);
    try {
        return run_selected();
    } catch (const std::exception& e) {
        fmt::print(stderr, "tunnel: internal error: {}\n", e.what());
        return 70;
    }
}
