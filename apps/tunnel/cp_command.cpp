// tunnel cp [opts] SRC... DST   (scp-style host:path on either side)
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/terminal_prompt.hpp"
#include "link/pooled_transfer.hpp"
#include "transfer/copier.hpp"
#include "transfer/copy_plan.hpp"
#include "transfer/local_checks.hpp"
#include "transfer/retrying_transfer.hpp"
#include "transfer/target.hpp"

namespace tunnel::cli {

namespace {

// scp's spelling: -P PORT (since -p preserves), -i, -F, -o; no -l.
void add_scp_connection_flags(CLI::App& cmd, ssh::client_flags& flags) {
    cmd.add_option_function<uint16_t>(
           "-P,--port", [&flags](uint16_t p) { flags.port = p; },
           "Port to connect to on the remote host")
        ->check(CLI::Range(1, 65535));
    cmd.add_option("-i,--private-key", flags.identity_files,
                   "Identity (private key) file; may be repeated")
        ->take_all()
        ->allow_extra_args(false);
    cmd.add_option_function<std::string>(
        "-F", [&flags](const std::string& f) { flags.config_file = f; },
        "ssh_config file to use instead of ~/.ssh/config");
    cmd.add_option("-o", flags.options,
                   "ssh_config option as Key=Value, e.g. -o Ciphers=aes128-gcm@openssh.com")
        ->take_all()
        ->allow_extra_args(false);
}

struct cp_flags {
    ssh::client_flags connection;
    transfer::copy_request request;  // what is copied where, and how
    unsigned inflight = 64;
    bool json = false;
};

int run_cp(const cp_flags& f) {
    auto plan = transfer::plan_copy(f.request);
    if (!plan) return report(plan.error());
    const transfer::copy_options& o = plan->options;
    // Local paths are checked before anything is sent: a missing source is
    // bad input (exit 2), not a reason to log in.
    if (plan->upload) {
        const auto problems = transfer::check_upload_sources(plan->sources, o.recursive);
        for (const auto& e : problems) fmt::print(stderr, "tunnel: {}\n", e.message);
        if (!problems.empty()) return exit_usage;
    } else if (auto d = transfer::check_download_destination(plan->dest, plan->sources.size());
               !d) {
        fmt::print(stderr, "tunnel: {}\n", d.error().message);
        return exit_usage;
    }

    auto target = transfer::resolve_target(f.connection, plan->host);
    if (!target) return report(target.error());

    asio::io_context io;
    transfer::progress meter(!f.json && ::isatty(2));
    transfer::transfer_stats stats;
    std::optional<core::error> fatal;
    sftp::client_options so;
    so.max_inflight = std::max(1u, f.inflight);
    transfer::retry_log retries_seen;
    transfer::reconnect_options reconnect;
    reconnect.retries = plan->retries;
    reconnect.on_retry = [&](const transfer::retry_event& e) {
        retries_seen.record(e);
        if (!f.json) meter.notice(transfer::describe(e));  // --json: reported in the JSON
    };
    bool noted = false;
    // One attempt on a fresh connection; after a reconnect it resumes.
    auto attempt = [&](transfer::remote_host& host,
                       bool resuming) -> asio::awaitable<core::result<void>> {
        if (!noted && transfer::needs_remote_commands(o)) {
            noted = true;
            const bool exec_ok = co_await host.exec_allowed();
            if (!exec_ok)
                for (const auto& note : transfer::notes_without_remote_commands(*plan))
                    fmt::print(stderr, "tunnel: {}\n", note);
        }
        transfer::copy_options oa = o;
        oa.resume = o.resume || resuming;
        core::result<void> r;  // (no co_await inside ?: — g++ 12 miscompiles it)
        if (plan->upload)
            r = co_await transfer::upload(host, plan->sources, plan->dest, oa, meter, stats);
        else
            r = co_await transfer::download(host, plan->sources, plan->dest, oa, meter, stats);
        co_return r;
    };
    // A running `tunnel up` whose link reaches the host carries the SFTP
    // sessions (docs/link.md, "Pooled sessions"); else our own connection.
    if (auto control = link::pooled_control_path()) {
        auto pooled = std::make_shared<link::manager_transfer>(*control);
        pooled->name_destination(target->destination(), plan->host);
        reconnect.pooled = std::move(pooled);
    }
    run_until_done(io, [&]() -> asio::awaitable<void> {
        // (named, not temporaries, in a co_await's arguments — g++ 12)
        asio::any_io_executor ex = io.get_executor();
        transfer::transfer_attempt work = attempt;
        auto r =
            co_await transfer::run_with_reconnects(ex, *target, so, reconnect, meter, stats, work);
        if (!r) fatal = r.error();
    });
    meter.finish();
    for (const auto& e : stats.errors) fmt::print(stderr, "tunnel: {}\n", e);
    // Set when the copy ended because the connection went away.
    const auto lost = retries_seen.lost_advice(fatal, stats);
    if (fatal) fmt::print(stderr, "tunnel: {}\n", fatal->message);
    if (lost) fmt::print(stderr, "tunnel: {}\n", *lost);
    if (!f.json && ::isatty(2) && !fatal && !lost)
        fmt::print(stderr, "{} copied, {} unchanged (skipped), {} failed; {} in {:.1f}s\n",
                   stats.files, stats.skipped, stats.failed, transfer::human_bytes(meter.done()),
                   meter.seconds());
    if (f.json) {
        auto j = transfer::summary_json(stats, meter.done(), meter.seconds());
        retries_seen.add_to(j, fatal, lost);
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (fatal) return exit_code_for(*fatal);
    if (lost) return exit_connection;
    if (stats.failed == 0) return 0;
    // Nothing copied and every failure was bad input (missing source, ...): usage error.
    return stats.files == 0 && stats.skipped == 0 && stats.only_input_errors ? exit_usage : 1;
}

}  // namespace

void add_cp_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<cp_flags>();
    auto* cmd =
        app.add_subcommand("cp", "Copy files to or from a host (scp-style, atomic, resumable)");
    cmd->footer(
        "Examples:\n"
        "  tunnel cp app.tar.gz web1:/srv/releases/\n"
        "  tunnel cp -r -p --jobs 8 web1:/var/log/app ./logs\n"
        "  tunnel cp --resume --verify big.iso root@10.0.0.5:/data/\n"
        "  tunnel cp --retries 5 backup.tar web1:/srv/  # reconnects and resumes after a cut\n"
        "Files are written to a hidden temp name, synced and renamed: the destination is never "
        "half-written.\n"
        "Unchanged files (same size and mtime, or --checksum) are skipped.\n"
        "Exit status: 0 all copied; 1 some files failed; 2 bad usage or missing path; 255 "
        "connection failure.");
    add_scp_connection_flags(*cmd, flags->connection);
    cmd->add_flag("-r,--recursive", flags->request.recursive,
                  "Copy directories and their contents");
    cmd->add_flag("-p,--preserve", flags->request.preserve, "Keep modes and modification times");
    cmd->add_option("--mode", flags->request.mode,
                    "Permission bits for copied files, octal (e.g. 0640)");
    cmd->add_flag("--resume", flags->request.resume,
                  "Continue an interrupted copy from its temp file");
    cmd->add_flag("--verify", flags->request.verify,
                  "Compare SHA-256 of source and destination after copying");
    cmd->add_flag("--checksum", flags->request.checksum,
                  "Skip files whose SHA-256 matches (not size and mtime)");
    cmd->add_option("--jobs,-j", flags->request.jobs, "Files copied concurrently")
        ->capture_default_str();
    cmd->add_option("--inflight", flags->inflight, "SFTP requests in flight per file")
        ->capture_default_str();
    auto* streams =
        cmd->add_option("--streams", flags->request.streams,
                        "SFTP channels per large upload (64 MiB and up; by default only when the "
                        "round trip is 2 ms or more; not with --resume)")
            ->capture_default_str();
    cmd->add_option("--owner", flags->request.owner,
                    "Owner for uploaded files (with --sudo: sudo -n chown on the host)");
    cmd->add_option("--group", flags->request.group, "Group for uploaded files (with --sudo)");
    cmd->add_flag("--sudo", flags->request.sudo,
                  "Allow --owner/--group to run chown through sudo -n");
    cmd->add_option("--retries", flags->request.retries,
                    "After a lost connection, reconnect and resume this many times (0-100; "
                    "backoff with jitter)")
        ->capture_default_str();
    cmd->add_flag("--json", flags->json, "Print a JSON summary at the end");
    cmd->add_option("paths", flags->request.paths,
                    "SRC... DST, each a local path or [user@]host:path")
        ->required();
    cmd->callback([flags, streams, &run] {
        flags->request.streams_given = streams->count() > 0;
        run = [flags] { return run_cp(*flags); };
    });
}

}  // namespace tunnel::cli
