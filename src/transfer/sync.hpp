// `tunnel sync SRC DST`: makes the contents of directory DST match directory
// SRC (like `rsync -a SRC/ DST/`), one side local and the other remote.
// Unchanged files are recognised from the two listings alone (size + mtime),
// so a run with nothing to do reads no file data; --checksum compares
// SHA-256 instead. Symlinks are copied as links. Include/exclude rules apply
// to both sides, so excluded files at the destination are never deleted.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "transfer/copier.hpp"
#include "transfer/filter.hpp"
#include "transfer/location.hpp"

namespace tunnel::transfer {

struct sync_options {
    bool delete_extraneous = false;  // --delete
    bool dry_run = false;
    bool checksum = false;
    bool resume = false;     // continue copies from their temp files (after a reconnect)
    bool resumable = false;  // copy each file over one channel, so a cut copy can resume
    unsigned jobs = 4;
    path_filter filter;
};

struct sync_action {
    enum class kind { mkdir, copy, link, remove, rmdir, attrs };
    kind type = kind::copy;
    std::string rel;
    std::string detail;  // link target, or why a file is copied

    // "copy a/b.txt (size differs)" — the --dry-run line.
    [[nodiscard]] std::string describe() const;
};

// Plans and (unless dry_run) carries out the sync. `upload`: SRC local,
// DST remote; else the reverse. Every planned action is passed to `on_action`.
asio::awaitable<core::result<void>> sync_trees(remote_host& host, bool upload, std::string src,
                                               std::string dst, const sync_options& o, progress& p,
                                               transfer_stats& stats,
                                               std::function<void(const sync_action&)> on_action);

}  // namespace tunnel::transfer
