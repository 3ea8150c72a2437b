// tunnel: one binary, one subcommand per file. Parse, wire, call libtunnel.
#include <cstdio>
#include <exception>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "observe/log.hpp"

int main(int argc, char** argv) {
    using namespace tunnel;
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
    cli::add_exec_command(app, run_selected);
    cli::add_ssh_command(app, run_selected);
    cli::add_forward_command(app, run_selected);
    cli::add_cp_command(app, run_selected);
    cli::add_sync_command(app, run_selected);
    cli::add_script_command(app, run_selected);
    cli::add_ws_connect_command(app, run_selected);
    cli::add_audit_command(app, run_selected);
    cli::add_token_command(app, run_selected);
    cli::add_apply_command(app, run_selected);
    cli::add_connect_command(app, run_selected);
    cli::add_audit_host_command(app, run_selected);
    cli::add_service_command(app, run_selected);
    cli::add_run_command(app, run_selected);
    cli::add_relay_command(app, run_selected);

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
