#include "transfer/copier.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "transfer/copy_plan.hpp"
#include "transfer/local_file.hpp"
#include "transfer/location.hpp"
#include "transfer/retry_policy.hpp"
#include "transfer/run_workers.hpp"

namespace tunnel::transfer {

void record_failure(transfer_stats& stats, progress& p, const core::error& e) {
    ++stats.failed;
    stats.errors.push_back(e.message);
    if (e.code != core::errc::invalid_argument && e.code != core::errc::not_found)
        stats.only_input_errors = false;
    if (connection_lost(e) && !stats.connection_lost) stats.connection_lost = e;
    p.finish();
}

asio::awaitable<void> copy_file_tasks(remote_host& host, std::vector<file_task> tasks, bool up,
                                      const copy_options& o, progress& p, transfer_stats& stats) {
    std::size_t next = 0;
    unsigned workers = std::max(
        1u,
        std::min<unsigned>(o.jobs, static_cast<unsigned>(std::max<std::size_t>(tasks.size(), 1))));
    co_await run_workers(workers, [&](unsigned slot) -> asio::awaitable<void> {
        auto c = co_await host.sftp(slot);
        if (!c) {
            // Fewer channels than asked (MaxSessions): leave the work to the others.
            if (slot > 0) co_return;
            while (next < tasks.size()) {
                ++next;
                record_failure(stats, p, c.error());
            }
            co_return;
        }
        while (next < tasks.size()) {
            const auto& t = tasks[next++];
            if (stats.finished_before(t.to)) {  // by an attempt before a reconnect
                p.resumed(t.size);
                continue;
            }
            // (no co_await inside ?: — g++ 12 destroys its temporaries twice)
            core::result<file_outcome> r;
            if (up)
                r = co_await upload_file(host, **c, t.from, t.to, o, p);
            else
                r = co_await download_file(host, **c, t.from, t.to, o, p);
            if (!r) {
                record_failure(stats, p, r.error());
            } else if (*r == file_outcome::skipped) {
                ++stats.skipped;
            } else {
                ++stats.files;
                stats.mark_finished(t.to);
            }
        }
    });
}

namespace {

// Entries below a directory that could not be created are left out.
struct failed_dirs {
    std::vector<std::string> rels;
    [[nodiscard]] bool covers(const std::string& rel) const {
        for (const auto& d : rels)
            if (rel.size() > d.size() && rel.compare(0, d.size(), d) == 0 && rel[d.size()] == '/')
                return true;
        return false;
    }
};

core::result<void> make_local_dir(const std::string& path, std::uint32_t mode) {
    if (::mkdir(path.c_str(), mode) == 0) return {};
    int e = errno;
    struct stat st {};
    if (e == EEXIST && ::lstat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return {};
        if (S_ISLNK(st.st_mode))
            return core::fail(core::errc::permission_denied,
                              fmt::format("refusing to write through the symlink {}", path));
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} exists and is not a directory", path));
    }
    return tl::unexpected(errno_error("cannot create directory", path, e));
}

}  // namespace

asio::awaitable<core::result<void>> upload(remote_host& host, std::vector<std::string> sources,
                                           std::string dest, const copy_options& o, progress& p,
                                           transfer_stats& stats) {
    auto c0 = co_await host.sftp(0);
    if (!c0) co_return tl::unexpected(c0.error());
    sftp::client& c = **c0;
    auto dst = co_await c.stat(dest);
    const bool dest_is_dir = dst && dst->is_dir();
    if (auto ok = check_copy_destination(sources.size(), dest, dst.has_value(), dest_is_dir,
                                         host.display_path(dest));
        !ok)
        co_return tl::unexpected(ok.error());

    std::vector<file_task> tasks;
    std::vector<std::pair<std::string, tree_entry>> dirs;  // remote path, entry: times set last
    for (const auto& src : sources) {
        struct stat st {};
        if (::stat(src.c_str(), &st) != 0) {
            record_failure(stats, p, errno_error("cannot read", src));
            continue;
        }
        std::string target = copy_target(src, dest, dest_is_dir);
        if (!S_ISDIR(st.st_mode)) {
            p.add_total(static_cast<std::uint64_t>(st.st_size));
            tasks.push_back({src, target, static_cast<std::uint64_t>(st.st_size)});
            continue;
        }
        if (!o.recursive) {
            record_failure(
                stats, p,
                {core::errc::invalid_argument, fmt::format("{} is a directory (use -r)", src)});
            continue;
        }
        auto tree = list_local_tree(src, nullptr);
        if (!tree) {
            record_failure(stats, p, tree.error());
            continue;
        }
        const std::uint32_t top_mode = o.preserve ? (st.st_mode & 07777) : 0755;
        auto made = co_await c.mkdir(target, top_mode);
        if (!made) {
            auto t = co_await c.stat(target);
            if (!t || !t->is_dir()) {
                record_failure(stats, p, made.error());
                continue;
            }
        }
        tree_entry top;
        top.mode = st.st_mode & 07777;
        top.mtime = st.st_mtim.tv_sec;
        dirs.emplace_back(target, top);
        failed_dirs failed;
        for (const auto& e : *tree) {
            if (failed.covers(e.rel)) continue;
            std::string to = join_path(target, e.rel);
            std::string from = join_path(src, e.rel);
            switch (e.type) {
                case tree_entry::kind::dir: {
                    const std::uint32_t dir_mode = o.preserve ? e.mode : 0755;
                    auto m = co_await c.mkdir(to, dir_mode);
                    if (!m) {
                        auto t = co_await c.lstat(to);
                        if (!t || !t->is_dir()) {
                            record_failure(stats, p, m.error());
                            failed.rels.push_back(e.rel);
                            break;
                        }
                    }
                    dirs.emplace_back(to, e);
                    break;
                }
                case tree_entry::kind::file:
                    p.add_total(e.size);
                    tasks.push_back({from, to, e.size});
                    break;
                case tree_entry::kind::link: {
                    if (stats.finished_before(to)) break;
                    (void)co_await c.remove(to);
                    if (auto l = co_await c.symlink(e.link_target, to); !l) {
                        record_failure(stats, p, l.error());
                    } else {
                        ++stats.links;
                        stats.mark_finished(to);
                    }
                    break;
                }
                case tree_entry::kind::other:
                    spdlog::warn("skipping {}: not a regular file, directory or symlink", from);
                    break;
            }
        }
    }
    std::vector<std::string> owned;
    if (o.owner || o.group) {
        for (const auto& d : dirs) owned.push_back(d.first);
        for (const auto& t : tasks) owned.push_back(t.to);
    }
    co_await copy_file_tasks(host, std::move(tasks), true, o, p, stats);
    if (o.preserve) {
        // Deepest first, after the files: writing into a directory changes its mtime.
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
            sftp::file_attrs a;
            a.permissions = it->second.mode;
            a.atime = a.mtime = static_cast<std::uint32_t>(it->second.mtime);
            (void)co_await c.setstat(it->first, a);
        }
    }
    if (!owned.empty()) {
        // chown through sudo, many paths per command.
        const std::string spec = chown_spec(o.owner, o.group);
        for (const auto& command : chown_commands(o.owner, o.group, owned)) {
            auto r = co_await host.run(command, std::chrono::minutes(5));
            if (!r)
                record_failure(stats, p, r.error());
            else if (r->exit_status != 0)
                record_failure(
                    stats, p,
                    {core::errc::permission_denied,
                     fmt::format("chown {} on {} failed: {}", spec, host.destination(),
                                 r->err.empty() ? "exit status " + std::to_string(r->exit_status)
                                                : r->err.substr(0, r->err.find('\n')))});
        }
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> download(remote_host& host, std::vector<std::string> sources,
                                             std::string dest, const copy_options& o, progress& p,
                                             transfer_stats& stats) {
    auto c0 = co_await host.sftp(0);
    if (!c0) co_return tl::unexpected(c0.error());
    sftp::client& c = **c0;
    struct stat dst {};
    const bool dest_exists = ::stat(dest.c_str(), &dst) == 0;
    const bool dest_is_dir = dest_exists && S_ISDIR(dst.st_mode);
    if (auto ok = check_copy_destination(sources.size(), dest, dest_exists, dest_is_dir, dest); !ok)
        co_return tl::unexpected(ok.error());

    std::vector<file_task> tasks;
    std::vector<std::pair<std::string, tree_entry>> dirs;
    for (const auto& src : sources) {
        auto st = co_await c.stat(src);
        if (!st) {
            record_failure(stats, p, st.error());
            continue;
        }
        std::string name = base_name(src);
        if (dest_is_dir && !safe_entry_name(name)) {
            record_failure(
                stats, p,
                {core::errc::invalid_argument,
                 fmt::format("cannot name a copy of {} inside {}", host.display_path(src), dest)});
            continue;
        }
        std::string target = copy_target(src, dest, dest_is_dir);
        if (!st->is_dir()) {
            p.add_total(st->size.value_or(0));
            tasks.push_back({src, target, st->size.value_or(0)});
            continue;
        }
        if (!o.recursive) {
            record_failure(stats, p,
                           {core::errc::invalid_argument,
                            fmt::format("{} is a directory (use -r)", host.display_path(src))});
            continue;
        }
        auto tree = co_await list_remote_tree(c, src, nullptr);
        if (!tree) {
            record_failure(stats, p, tree.error());
            continue;
        }
        if (auto m = make_local_dir(target, 0700); !m) {
            record_failure(stats, p, m.error());
            continue;
        }
        tree_entry top;
        top.mode = st->permissions.value_or(0755) & 07777;
        top.mtime = st->mtime.value_or(0);
        dirs.emplace_back(target, top);
        failed_dirs failed;
        for (auto& e : *tree) {
            if (failed.covers(e.rel)) continue;
            std::string to = join_path(target, e.rel);
            std::string from = join_path(src, e.rel);
            switch (e.type) {
                case tree_entry::kind::dir:
                    if (auto m = make_local_dir(to, 0700); !m) {
                        record_failure(stats, p, m.error());
                        failed.rels.push_back(e.rel);
                        break;
                    }
                    dirs.emplace_back(to, e);
                    break;
                case tree_entry::kind::file:
                    p.add_total(e.size);
                    tasks.push_back({from, to, e.size});
                    break;
                case tree_entry::kind::link: {
                    if (stats.finished_before(to)) break;
                    auto t = co_await c.readlink(from);
                    if (!t) {
                        record_failure(stats, p, t.error());
                        break;
                    }
                    if (link_escapes(e.rel, *t)) {
                        record_failure(
                            stats, p,
                            {core::errc::permission_denied,
                             fmt::format(
                                 "refusing {}: the symlink points outside the destination ({})",
                                 host.display_path(from), *t)});
                        break;
                    }
                    ::unlink(to.c_str());
                    if (::symlink(t->c_str(), to.c_str()) != 0) {
                        record_failure(stats, p, errno_error("cannot create symlink", to));
                    } else {
                        ++stats.links;
                        stats.mark_finished(to);
                    }
                    break;
                }
                case tree_entry::kind::other:
                    spdlog::warn("skipping {}: not a regular file, directory or symlink",
                                 host.display_path(from));
                    break;
            }
        }
    }
    co_await copy_file_tasks(host, std::move(tasks), false, o, p, stats);
    mode_t mask = ::umask(0);
    ::umask(mask);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
        ::chmod(it->first.c_str(), o.preserve ? it->second.mode : (0777 & ~mask));
        if (o.preserve) {
            struct timespec times[2] = {{it->second.mtime, 0}, {it->second.mtime, 0}};
            ::utimensat(AT_FDCWD, it->first.c_str(), times, AT_SYMLINK_NOFOLLOW);
        }
    }
    co_return core::result<void>{};
}

}  // namespace tunnel::transfer
