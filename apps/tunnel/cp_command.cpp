// tunnel cp [opts] SRC... DST   (scp-style host:path on either side)
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/terminal_prompt.hpp"
#include "transfer/copier.hpp"
#include "transfer/local_checks.hpp"
#include "transfer/location.hpp"
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
    std::vector<std::string> paths;
    bool recursive = false;
    bool preserve = false;
    std::string mode;
    bool resume = false;
    bool verify = false;
    bool checksum = false;
    unsigned jobs = 4;
    unsigned inflight = 64;
    unsigned streams = 4;
    bool streams_given = false;  // explicit --streams: use them even on a near link
    bool json = false;
    std::string owner, group;
    bool sudo = false;
};

int run_cp(const cp_flags& f) {
    if (f.paths.size() < 2)
        return report(
            {core::errc::invalid_argument, "cp needs at least one source and a destination"});
    std::vector<transfer::location> sources;
    for (std::size_t i = 0; i + 1 < f.paths.size(); ++i) {
        auto l = transfer::parse_location(f.paths[i]);
        if (!l) return report(l.error());
        sources.push_back(*l);
    }
    auto dest = transfer::parse_location(f.paths.back());
    if (!dest) return report(dest.error());

    transfer::copy_options o;
    o.recursive = f.recursive;
    o.preserve = f.preserve;
    o.resume = f.resume;
    o.verify = f.verify;
    o.checksum = f.checksum;
    o.jobs = std::max(1u, f.jobs);
    o.streams = std::max(1u, f.streams);
    if (f.streams_given) o.stream_min_rtt = std::chrono::microseconds(0);
    if (!f.mode.empty()) {
        auto m = transfer::parse_mode(f.mode);
        if (!m) return report(m.error());
        o.mode = *m;
    }

    if (!f.owner.empty()) o.owner = f.owner;
    if (!f.group.empty()) o.group = f.group;
    if ((o.owner || o.group) && !f.sudo)
        return report({core::errc::invalid_argument,
                       "--owner/--group change ownership with sudo on the host: add --sudo"});
    for (const auto* name : {&f.owner, &f.group})
        if (name->find_first_of(":/ \t\n") != std::string::npos)
            return report({core::errc::invalid_argument,
                           fmt::format("invalid user or group name \"{}\"", *name)});

    // One side local, the other one remote host.
    const bool up = dest->remote();
    std::string host_text;
    std::vector<std::string> source_paths;
    for (const auto& s : sources) {
        if (s.remote() == up)
            return report(
                {core::errc::invalid_argument,
                 up ? fmt::format("{} and {} are both remote: copy between hosts in two steps",
                                  s.display(), dest->display())
                    : fmt::format("{} and {} are both local: use cp", s.display(),
                                  dest->display())});
        if (!up) {
            if (!host_text.empty() && *s.host != host_text)
                return report(
                    {core::errc::invalid_argument,
                     fmt::format(
                         "sources on several hosts ({} and {}): copy from one host at a time",
                         host_text, *s.host)});
            host_text = *s.host;
        }
        source_paths.push_back(s.path);
    }
    if (up) host_text = *dest->host;
    if ((o.owner || o.group) && !up)
        return report({core::errc::invalid_argument, "--owner/--group apply to uploads only"});
    // Local paths are checked before anything is sent: a missing source is
    // bad input (exit 2), not a reason to log in.
    if (up) {
        const auto problems = transfer::check_upload_sources(source_paths, o.recursive);
        for (const auto& e : problems) fmt::print(stderr, "tunnel: {}\n", e.message);
        if (!problems.empty()) return exit_usage;
    } else if (auto d = transfer::check_download_destination(dest->path, source_paths.size()); !d) {
        fmt::print(stderr, "tunnel: {}\n", d.error().message);
        return exit_usage;
    }

    auto target = transfer::resolve_target(f.connection, host_text);
    if (!target) return report(target.error());

    asio::io_context io;
    transfer::progress meter(!f.json && ::isatty(2));
    transfer::transfer_stats stats;
    std::optional<core::error> fatal;
    sftp::client_options so;
    so.max_inflight = std::max(1u, f.inflight);
    run_until_done(io, [&]() -> asio::awaitable<void> {
        auto host = co_await transfer::remote_host::connect(io.get_executor(), *target, so);
        if (!host) {
            fatal = host.error();
        } else {
            const bool needs_exec = o.owner || o.group || o.verify || o.checksum;
            const bool exec_ok = !needs_exec || co_await (*host)->exec_allowed();
            if ((o.owner || o.group) && !exec_ok)
                fmt::print(stderr,
                           "tunnel: note: {} runs no commands (SFTP-only account): --owner/--group "
                           "cannot be "
                           "applied\n",
                           host_text);
            if ((o.verify || o.checksum) && !exec_ok)
                fmt::print(stderr,
                           "tunnel: note: {} runs no commands (SFTP-only account): remote SHA-256 "
                           "is computed "
                           "by reading files back\n",
                           host_text);
            core::result<void> r;  // (no co_await inside ?: — g++ 12 miscompiles it)
            if (up)
                r = co_await transfer::upload(**host, source_paths, dest->path, o, meter, stats);
            else
                r = co_await transfer::download(**host, source_paths, dest->path, o, meter, stats);
            if (!r) fatal = r.error();
        }
    });
    meter.finish();
    for (const auto& e : stats.errors) fmt::print(stderr, "tunnel: {}\n", e);
    if (fatal) fmt::print(stderr, "tunnel: {}\n", fatal->message);
    if (!f.json && ::isatty(2) && !fatal)
        fmt::print(stderr, "{} copied, {} unchanged (skipped), {} failed; {} in {:.1f}s\n",
                   stats.files, stats.skipped, stats.failed, transfer::human_bytes(meter.done()),
                   meter.seconds());
    if (f.json) {
        auto j = transfer::summary_json(stats, meter.done(), meter.seconds());
        if (fatal) j["error"] = fatal->message;
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (fatal) return exit_code_for(*fatal);
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
        "Files are written to a hidden temp name, synced and renamed: the destination is never "
        "half-written.\n"
        "Unchanged files (same size and mtime, or --checksum) are skipped.\n"
        "Exit status: 0 all copied; 1 some files failed; 2 bad usage or missing path; 255 "
        "connection failure.");
    add_scp_connection_flags(*cmd, flags->connection);
    cmd->add_flag("-r,--recursive", flags->recursive, "Copy directories and their contents");
    cmd->add_flag("-p,--preserve", flags->preserve, "Keep modes and modification times");
    cmd->add_option("--mode", flags->mode, "Permission bits for copied files, octal (e.g. 0640)");
    cmd->add_flag("--resume", flags->resume, "Continue an interrupted copy from its temp file");
    cmd->add_flag("--verify", flags->verify,
                  "Compare SHA-256 of source and destination after copying");
    cmd->add_flag("--checksum", flags->checksum,
                  "Skip files whose SHA-256 matches (not size and mtime)");
    cmd->add_option("--jobs,-j", flags->jobs, "Files copied concurrently")->capture_default_str();
    cmd->add_option("--inflight", flags->inflight, "SFTP requests in flight per file")
        ->capture_default_str();
    auto* streams =
        cmd->add_option("--streams", flags->streams,
                        "SFTP channels per large upload (64 MiB and up; by default only when the "
                        "round trip is 2 ms or more; not with --resume)")
            ->capture_default_str();
    cmd->add_option("--owner", flags->owner,
                    "Owner for uploaded files (with --sudo: sudo -n chown on the host)");
    cmd->add_option("--group", flags->group, "Group for uploaded files (with --sudo)");
    cmd->add_flag("--sudo", flags->sudo, "Allow --owner/--group to run chown through sudo -n");
    cmd->add_flag("--json", flags->json, "Print a JSON summary at the end");
    cmd->add_option("paths", flags->paths, "SRC... DST, each a local path or [user@]host:path")
        ->required();
    cmd->callback([flags, streams, &run] {
        flags->streams_given = streams->count() > 0;
        run = [flags] { return run_cp(*flags); };
    });
}

}  // namespace tunnel::cli
