// tunnel sync [opts] SRC DST   (directories; one side host:path)
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "link/pooled_transfer.hpp"
#include "transfer/location.hpp"
#include "transfer/retrying_transfer.hpp"
#include "transfer/sync.hpp"
#include "transfer/target.hpp"

namespace tunnel::cli {

namespace {

struct sync_flags {
    ssh::client_flags connection;
    std::string src, dst;
    std::vector<std::string> includes, excludes;
    bool del = false;
    bool dry_run = false;
    bool checksum = false;
    unsigned jobs = 4;
    std::string retries = "0";
    bool json = false;
};

int run_sync(const sync_flags& f) {
    auto src = transfer::parse_location(f.src);
    if (!src) return report(src.error());
    auto dst = transfer::parse_location(f.dst);
    if (!dst) return report(dst.error());
    if (src->remote() == dst->remote())
        return report(
            {core::errc::invalid_argument,
             fmt::format("{} and {}: exactly one side must be remote (host:path)", f.src, f.dst)});
    auto filter = transfer::path_filter::parse(f.includes, f.excludes);
    if (!filter) return report(filter.error());
    auto retries = transfer::parse_retries(f.retries);
    if (!retries) return report(retries.error());
    const bool up = dst->remote();
    auto target = transfer::resolve_target(f.connection, up ? *dst->host : *src->host);
    if (!target) return report(target.error());

    transfer::sync_options o;
    o.delete_extraneous = f.del;
    o.dry_run = f.dry_run;
    o.checksum = f.checksum;
    o.jobs = std::max(1u, f.jobs);
    o.filter = std::move(*filter);
    o.resumable = *retries > 0;

    asio::io_context io;
    transfer::progress meter(!f.json && !f.dry_run && ::isatty(2));
    transfer::transfer_stats stats;
    std::optional<core::error> fatal;
    // The plan of the attempt that ran to the end (a reconnect plans again).
    std::vector<transfer::sync_action> planned;
    auto on_action = [&](const transfer::sync_action& a) {
        if (f.dry_run) planned.push_back(a);
    };
    transfer::retry_log retries_seen;
    transfer::reconnect_options reconnect;
    reconnect.retries = *retries;
    reconnect.on_retry = [&](const transfer::retry_event& e) {
        retries_seen.record(e);
        if (!f.json) meter.notice(transfer::describe(e));  // --json: reported in the JSON
    };
    bool noted = false;
    // One attempt on a fresh connection; after a reconnect it resumes.
    auto attempt = [&](transfer::remote_host& host,
                       bool resuming) -> asio::awaitable<core::result<void>> {
        if (!noted && o.checksum) {
            noted = true;
            const bool exec_ok = co_await host.exec_allowed();
            if (!exec_ok)
                fmt::print(stderr,
                           "tunnel: note: {} runs no commands (SFTP-only account): --checksum "
                           "reads remote files back\n",
                           up ? *dst->host : *src->host);
        }
        planned.clear();
        transfer::sync_options oa = o;
        oa.resume = resuming;
        std::function<void(const transfer::sync_action&)> report = on_action;
        auto r =
            co_await transfer::sync_trees(host, up, src->path, dst->path, oa, meter, stats, report);
        co_return r;
    };
    // A running `tunnel up` whose link reaches the host carries the SFTP
    // sessions (docs/link.md, "Pooled sessions"); else our own connection.
    if (auto control = link::pooled_control_path()) {
        auto pooled = std::make_shared<link::manager_transfer>(*control);
        pooled->name_destination(target->destination(), up ? *dst->host : *src->host);
        reconnect.pooled = std::move(pooled);
    }
    run_until_done(io, [&]() -> asio::awaitable<void> {
        // (named, not temporaries, in a co_await's arguments — g++ 12)
        asio::any_io_executor ex = io.get_executor();
        transfer::transfer_attempt work = attempt;
        sftp::client_options so;
        auto r =
            co_await transfer::run_with_reconnects(ex, *target, so, reconnect, meter, stats, work);
        if (!r) fatal = r.error();
    });
    meter.finish();
    if (!f.json)
        for (const auto& a : planned) fmt::print("{}\n", a.describe());
    for (const auto& e : stats.errors) fmt::print(stderr, "tunnel: {}\n", e);
    // Set when the sync ended because the connection went away.
    const auto lost = retries_seen.lost_advice(fatal, stats);
    if (fatal) fmt::print(stderr, "tunnel: {}\n", fatal->message);
    if (lost) fmt::print(stderr, "tunnel: {}\n", *lost);
    if (!f.json && !f.dry_run && ::isatty(2) && !fatal && !lost)
        fmt::print(stderr, "{} copied, {} unchanged, {} deleted, {} failed; {} in {:.1f}s\n",
                   stats.files, stats.skipped, stats.deleted, stats.failed,
                   transfer::human_bytes(meter.done()), meter.seconds());
    if (f.json) {
        auto j = transfer::summary_json(stats, meter.done(), meter.seconds());
        j["dry_run"] = f.dry_run;
        if (f.dry_run) {
            nlohmann::json plan = nlohmann::json::array();
            for (const auto& a : planned) plan.push_back(a.describe());
            j["plan"] = plan;
        }
        retries_seen.add_to(j, fatal, lost);
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (fatal) return exit_code_for(*fatal);
    if (lost) return exit_connection;
    return stats.failed == 0 ? 0 : 1;
}

}  // namespace

void add_sync_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<sync_flags>();
    auto* cmd =
        app.add_subcommand("sync", "Make a directory match another one (like rsync -a SRC/ DST/)");
    cmd->footer(
        "Examples:\n"
        "  tunnel sync ./site web1:/srv/www --delete --exclude '*.tmp' --exclude /.git/\n"
        "  tunnel sync --dry-run web1:/etc/nginx ./nginx-backup\n"
        "  tunnel sync --retries 5 ./media web1:/srv/media  # reconnects and resumes after a cut\n"
        "The contents of SRC go into DST (created if missing). Unchanged files (same size and "
        "mtime, or\n"
        "--checksum) are not read. Globs: * within a name, ** across directories, leading / "
        "anchors at the\n"
        "root, trailing / matches directories only; includes are checked before excludes.\n"
        "Exit status: 0 in sync; 1 some entries failed; 2 bad usage; 255 connection failure.");
    add_connection_flags(*cmd, flags->connection);
    cmd->add_option("--include", flags->includes,
                    "Glob of paths to keep even if an exclude matches; repeatable")
        ->take_all()
        ->allow_extra_args(false);
    cmd->add_option("--exclude", flags->excludes,
                    "Glob of paths to leave alone on both sides; repeatable")
        ->take_all()
        ->allow_extra_args(false);
    cmd->add_flag("--delete", flags->del, "Delete destination entries that are not in the source");
    cmd->add_flag("-n,--dry-run", flags->dry_run, "Print what would change and change nothing");
    cmd->add_flag("--checksum", flags->checksum,
                  "Compare SHA-256 of same-size files instead of mtimes");
    cmd->add_option("--jobs,-j", flags->jobs, "Files copied concurrently")->capture_default_str();
    cmd->add_option("--retries", flags->retries,
                    "After a lost connection, reconnect and resume this many times (0-100; "
                    "backoff with jitter)")
        ->capture_default_str();
    cmd->add_flag("--json", flags->json, "Print a JSON summary (with the plan on --dry-run)");
    cmd->add_option("src", flags->src, "Source directory: local path or [user@]host:path")
        ->required();
    cmd->add_option("dst", flags->dst, "Destination directory: local path or [user@]host:path")
        ->required();
    cmd->callback([flags, &run] { run = [flags] { return run_sync(*flags); }; });
}

}  // namespace tunnel::cli
