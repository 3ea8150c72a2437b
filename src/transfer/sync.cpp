#include "transfer/sync.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

namespace tunnel::transfer {

namespace {

using kind = tree_entry::kind;

core::error local_error(std::string_view what, const std::string& path) {
    int e = errno;
    return {e == ENOENT ? core::errc::not_found : core::errc::io_error,
            fmt::format("{} {}: {}", what, path, std::strerror(e))};
}

// The operations a sync needs on the destination side, local or remote.
struct dest_side {
    remote_host& host;
    sftp::client& c;
    bool remote;
    std::string root;

    [[nodiscard]] std::string path(const std::string& rel) const {
        return rel.empty() ? root : join_path(root, rel);
    }

    asio::awaitable<core::result<void>> mkdir(const std::string& rel, std::uint32_t mode) {
        if (remote) co_return co_await c.mkdir(path(rel), mode);
        if (::mkdir(path(rel).c_str(), mode) != 0)
            co_return tl::unexpected(local_error("cannot create directory", path(rel)));
        co_return core::result<void>{};
    }
    asio::awaitable<core::result<void>> remove(const std::string& rel, bool dir) {
        if (remote && dir) co_return co_await c.rmdir(path(rel));
        if (remote) co_return co_await c.remove(path(rel));
        if ((dir ? ::rmdir(path(rel).c_str()) : ::unlink(path(rel).c_str())) != 0)
            co_return tl::unexpected(local_error("cannot delete", path(rel)));
        co_return core::result<void>{};
    }
    asio::awaitable<core::result<void>> symlink(const std::string& target, const std::string& rel) {
        if (remote) co_return co_await c.symlink(target, path(rel));
        if (::symlink(target.c_str(), path(rel).c_str()) != 0)
            co_return tl::unexpected(local_error("cannot create symlink", path(rel)));
        co_return core::result<void>{};
    }
    asio::awaitable<core::result<void>> set_attrs(const std::string& rel, std::uint32_t mode,
                                                  std::int64_t mtime) {
        if (remote) {
            sftp::file_attrs a;
            a.permissions = mode;
            a.atime = a.mtime = static_cast<std::uint32_t>(mtime);
            co_return co_await c.setstat(path(rel), a);
        }
        if (::chmod(path(rel).c_str(), mode) != 0)
            co_return tl::unexpected(local_error("cannot chmod", path(rel)));
        struct timespec t[2] = {{mtime, 0}, {mtime, 0}};
        if (::utimensat(AT_FDCWD, path(rel).c_str(), t, AT_SYMLINK_NOFOLLOW) != 0)
            co_return tl::unexpected(local_error("cannot set times on", path(rel)));
        co_return core::result<void>{};
    }
};

bool is_under(const std::string& rel, const std::string& dir) {
    return rel.size() > dir.size() && rel.compare(0, dir.size(), dir) == 0 &&
           rel[dir.size()] == '/';
}

}  // namespace

std::string sync_action::describe() const {
    switch (type) {
        case kind::mkdir:
            return fmt::format("mkdir  {}/", rel.empty() ? "." : rel);
        case kind::copy:
            return detail.empty() ? fmt::format("copy   {}", rel)
                                  : fmt::format("copy   {} ({})", rel, detail);
        case kind::link:
            return fmt::format("link   {} -> {}", rel, detail);
        case kind::remove:
            return fmt::format("delete {}", rel);
        case kind::rmdir:
            return fmt::format("delete {}/", rel);
        case kind::attrs:
            return fmt::format("attrs  {}{}", rel, detail.empty() ? "" : " (" + detail + ")");
    }
    return rel;
}

asio::awaitable<core::result<void>> sync_trees(remote_host& host, bool upload, std::string src,
                                               std::string dst, const sync_options& o, progress& p,
                                               transfer_stats& stats,
                                               std::function<void(const sync_action&)> on_action) {
    auto c0 = co_await host.sftp(0);
    if (!c0) co_return tl::unexpected(c0.error());
    sftp::client& c = **c0;
    auto rname = [&](const std::string& path) { return host.display_path(path); };

    // 1. Both listings.
    std::vector<tree_entry> src_tree;
    if (upload) {
        struct stat st {};
        if (::stat(src.c_str(), &st) != 0)
            co_return tl::unexpected(local_error("cannot read", src));
        if (!S_ISDIR(st.st_mode))
            co_return core::fail(core::errc::invalid_argument,
                                 fmt::format("{} is not a directory", src));
        auto t = list_local_tree(src, &o.filter);
        if (!t) co_return tl::unexpected(t.error());
        src_tree = std::move(*t);
    } else {
        auto st = co_await c.stat(src);
        if (!st) co_return tl::unexpected(st.error());
        if (!st->is_dir())
            co_return core::fail(core::errc::invalid_argument,
                                 fmt::format("{} is not a directory", rname(src)));
        auto t = co_await list_remote_tree(c, src, &o.filter);
        if (!t) co_return tl::unexpected(t.error());
        src_tree = std::move(*t);
    }
    dest_side dest{host, c, upload, dst};
    bool dst_exists = false;
    std::vector<tree_entry> dst_tree;
    if (upload) {
        auto st = co_await c.stat(dst);
        if (st && !st->is_dir())
            co_return core::fail(core::errc::invalid_argument,
                                 fmt::format("{} is not a directory", rname(dst)));
        dst_exists = st.has_value();
        if (dst_exists) {
            auto t = co_await list_remote_tree(c, dst, &o.filter);
            if (!t) co_return tl::unexpected(t.error());
            dst_tree = std::move(*t);
        }
    } else {
        struct stat st {};
        if (::lstat(dst.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                co_return core::fail(core::errc::invalid_argument,
                                     fmt::format("{} is not a directory", dst));
            dst_exists = true;
            auto t = list_local_tree(dst, &o.filter);
            if (!t) co_return tl::unexpected(t.error());
            dst_tree = std::move(*t);
        }
    }
    if (!dst_exists) {
        auto parent = dir_name(dst);
        bool parent_ok = false;
        if (upload) {
            auto st = co_await c.stat(parent);
            parent_ok = st && st->is_dir();
        } else {
            struct stat st {};
            parent_ok = ::stat(parent.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (!parent_ok)
            co_return core::fail(core::errc::not_found,
                                 fmt::format("destination directory {} does not exist",
                                             upload ? rname(parent) : parent));
    }

    std::unordered_map<std::string, const tree_entry*> dst_map;
    for (const auto& e : dst_tree) dst_map.emplace(e.rel, &e);

    // Remote link targets are not in listings: read them when needed.
    auto remote_link = [&](const std::string& root,
                           const std::string& rel) -> asio::awaitable<std::string> {
        auto t = co_await c.readlink(join_path(root, rel));
        co_return t ? *t : std::string();
    };

    // 2. The plan.
    std::vector<sync_action> replace;  // destination entries of the wrong type, removed first
    std::vector<sync_action> mkdirs, copies, links, deletes, attrs;
    std::unordered_set<std::string> claimed;  // destination entries that have a source counterpart
    if (!dst_exists) mkdirs.push_back({sync_action::kind::mkdir, "", {}});
    std::vector<const tree_entry*> dirs;
    for (const auto& e : src_tree) {
        auto it = dst_map.find(e.rel);
        const tree_entry* d = it == dst_map.end() ? nullptr : it->second;
        if (d) claimed.insert(e.rel);
        if (d && d->type != e.type) {
            if (d->type == kind::dir) {
                // Everything under it goes first, deepest first.
                std::vector<const tree_entry*> under;
                for (const auto& x : dst_tree)
                    if (is_under(x.rel, d->rel)) under.push_back(&x);
                for (auto u = under.rbegin(); u != under.rend(); ++u) {
                    replace.push_back({(*u)->type == kind::dir ? sync_action::kind::rmdir
                                                               : sync_action::kind::remove,
                                       (*u)->rel,
                                       {}});
                    claimed.insert((*u)->rel);
                }
                replace.push_back({sync_action::kind::rmdir, d->rel, {}});
            } else {
                replace.push_back({sync_action::kind::remove, d->rel, {}});
            }
            d = nullptr;
        }
        switch (e.type) {
            case kind::dir:
                if (!d) mkdirs.push_back({sync_action::kind::mkdir, e.rel, {}});
                dirs.push_back(&e);
                break;
            case kind::file: {
                std::string why;
                if (!d)
                    why = "new";
                else if (d->size != e.size)
                    why = "size differs";
                else if (o.checksum) {
                    auto sp = upload ? join_path(src, e.rel) : join_path(dst, e.rel);
                    auto rp = upload ? join_path(dst, e.rel) : join_path(src, e.rel);
                    auto lh = sha256_file(sp);
                    auto rh = co_await sha256_remote(host, c, rp);
                    if (!lh || !rh || *lh != *rh) why = "checksum differs";
                } else if (d->mtime != e.mtime) {
                    why = "mtime differs";
                }
                if (!why.empty()) {
                    copies.push_back({sync_action::kind::copy, e.rel, why});
                } else if (stats.finished_before(join_path(dst, e.rel))) {
                    // Copied by an attempt before a reconnect: done, not "unchanged".
                    p.add_total(e.size);
                    p.resumed(e.size);
                } else {
                    ++stats.skipped;
                    if (d->mode != e.mode || d->mtime != e.mtime)
                        attrs.push_back({sync_action::kind::attrs, e.rel, "mode"});
                }
                break;
            }
            case kind::link: {
                std::string target = e.link_target;  // (no co_await inside ?: — g++ 12)
                if (!upload) target = co_await remote_link(src, e.rel);
                if (!upload && link_escapes(e.rel, target)) {
                    record_failure(
                        stats, p,
                        {core::errc::permission_denied,
                         fmt::format("refusing {}: the symlink points outside the destination ({})",
                                     rname(join_path(src, e.rel)), target)});
                    break;
                }
                if (d) {
                    std::string have = d->link_target;
                    if (upload) have = co_await remote_link(dst, e.rel);
                    if (have == target) break;
                    replace.push_back({sync_action::kind::remove, e.rel, {}});
                }
                links.push_back({sync_action::kind::link, e.rel, target});
                break;
            }
            case kind::other:
                break;
        }
    }
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
        auto d = dst_map.find((*it)->rel);
        // Writing into a directory changes its mtime: set every touched or new one.
        bool touched = d == dst_map.end() || d->second->mode != (*it)->mode ||
                       d->second->mtime != (*it)->mtime;
        if (touched) attrs.push_back({sync_action::kind::attrs, (*it)->rel, "directory"});
    }
    if (o.delete_extraneous) {
        for (auto it = dst_tree.rbegin(); it != dst_tree.rend(); ++it) {
            if (claimed.count(it->rel)) continue;
            deletes.push_back(
                {it->type == kind::dir ? sync_action::kind::rmdir : sync_action::kind::remove,
                 it->rel,
                 {}});
        }
    }

    std::unordered_map<std::string, const tree_entry*> src_map;
    for (const auto& e : src_tree) src_map.emplace(e.rel, &e);
    for (const auto* group : {&replace, &mkdirs, &copies, &links, &deletes})
        for (const auto& a : *group)
            if (on_action) on_action(a);
    for (const auto& a : attrs)
        if (on_action && a.detail != "directory") on_action(a);
    if (o.dry_run) {
        stats.files += copies.size();
        stats.deleted += deletes.size();
        stats.dirs += mkdirs.size();
        stats.links += links.size();
        co_return core::result<void>{};
    }

    // 3. Carry it out.
    for (const auto& a : replace) {
        if (auto r = co_await dest.remove(a.rel, a.type == sync_action::kind::rmdir); !r)
            record_failure(stats, p, r.error());
        else
            ++stats.deleted;
    }
    for (const auto& a : mkdirs) {
        if (auto r = co_await dest.mkdir(a.rel, 0700); !r)
            record_failure(stats, p, r.error());
        else
            ++stats.dirs;
    }
    std::vector<file_task> tasks;
    for (const auto& a : copies) {
        const std::uint64_t size = src_map.at(a.rel)->size;
        tasks.push_back({join_path(src, a.rel), join_path(dst, a.rel), size});
        p.add_total(size);
    }
    copy_options co;
    co.preserve = true;
    co.always = true;  // already compared
    co.resume = o.resume;
    if (o.resumable) co.streams = 1;  // a multi-channel temp file cannot be resumed
    co.jobs = o.jobs;
    co_await copy_file_tasks(host, std::move(tasks), upload, co, p, stats);
    for (const auto& a : links) {
        if (auto r = co_await dest.symlink(a.detail, a.rel); !r)
            record_failure(stats, p, r.error());
        else
            ++stats.links;
    }
    for (const auto& a : deletes) {
        if (auto r = co_await dest.remove(a.rel, a.type == sync_action::kind::rmdir); !r)
            record_failure(stats, p, r.error());
        else
            ++stats.deleted;
    }
    for (const auto& a : attrs) {
        const tree_entry* e = a.rel.empty() ? nullptr : src_map.at(a.rel);
        if (!e) continue;
        if (auto r = co_await dest.set_attrs(a.rel, e->mode, e->mtime); !r)
            record_failure(stats, p, r.error());
    }
    if (!dst_exists) {
        // The root itself takes the source root's mode.
        if (upload) {
            struct stat st {};
            if (::stat(src.c_str(), &st) == 0)
                (void)co_await dest.set_attrs("", st.st_mode & 07777, st.st_mtim.tv_sec);
        } else if (auto st = co_await c.stat(src); st) {
            (void)co_await dest.set_attrs("", st->permissions.value_or(0755) & 07777,
                                          st->mtime.value_or(0));
        }
    }
    co_return core::result<void>{};
}

}  // namespace tunnel::transfer
