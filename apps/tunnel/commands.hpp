// Each subcommand registers its flags and sets the function main runs.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace tunnel::cli {

using command_runner = std::function<int()>;

void add_exec_command(CLI::App& app, command_runner& run);
void add_ssh_command(CLI::App& app, command_runner& run);
void add_forward_command(CLI::App& app, command_runner& run);
void add_cp_command(CLI::App& app, command_runner& run);
void add_sync_command(CLI::App& app, command_runner& run);
void add_script_command(CLI::App& app, command_runner& run);
void add_ws_connect_command(CLI::App& app, command_runner& run);
void add_audit_command(CLI::App& app, command_runner& run);
void add_token_command(CLI::App& app, command_runner& run);
void add_apply_command(CLI::App& app, command_runner& run);
void add_connect_command(CLI::App& app, command_runner& run);
void add_audit_host_command(CLI::App& app, command_runner& run);
void add_service_command(CLI::App& app, command_runner& run);
void add_run_command(CLI::App& app, command_runner& run);
void add_relay_command(CLI::App& app, command_runner& run);
void add_deploy_command(CLI::App& app, command_runner& run);
void add_rollback_command(CLI::App& app, command_runner& run);
void add_releases_command(CLI::App& app, command_runner& run);
void add_up_command(CLI::App& app, command_runner& run);
void add_ls_command(CLI::App& app, command_runner& run);
void add_status_command(CLI::App& app, command_runner& run);
void add_restart_command(CLI::App& app, command_runner& run);
void add_switch_command(CLI::App& app, command_runner& run);
void add_events_command(CLI::App& app, command_runner& run);
void add_down_command(CLI::App& app, command_runner& run);
void add_health_command(CLI::App& app, command_runner& run);
void add_usage_command(CLI::App& app, command_runner& run);
void add_ui_command(CLI::App& app, command_runner& run);
void add_share_command(CLI::App& app, command_runner& run);

}  // namespace tunnel::cli
