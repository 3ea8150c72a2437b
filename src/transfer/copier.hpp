// What `tunnel cp` does: every source (a file, or a tree with -r) to one
// destination over SFTP, files side by side on several channels. The pieces
// live in their own headers, included here for callers of the whole:
// checksum.hpp (SHA-256 either side), file_copy.hpp (one file, atomic temp +
// rename, resume), tree_walk.hpp (listing trees).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "transfer/checksum.hpp"
#include "transfer/file_copy.hpp"
#include "transfer/filter.hpp"
#include "transfer/progress.hpp"
#include "transfer/remote_host.hpp"
#include "transfer/tree_walk.hpp"

namespace tunnel::transfer {

// Every source to `dest`, scp's rules for naming (an existing directory
// receives sources by name). Per-file failures are counted in `stats` and
// the rest continue.
asio::awaitable<core::result<void>> upload(remote_host& host, std::vector<std::string> sources,
                                           std::string dest, const copy_options& o, progress& p,
                                           transfer_stats& stats);
asio::awaitable<core::result<void>> download(remote_host& host, std::vector<std::string> sources,
                                             std::string dest, const copy_options& o, progress& p,
                                             transfer_stats& stats);

// Copies each {from, to} pair (regular files) on up to o.jobs SFTP channels.
// A file that an earlier attempt of a retried run finished
// (stats.finished_before) is left alone and counted as done in `p`.
struct file_task {
    std::string from;
    std::string to;
    std::uint64_t size = 0;  // as listed, for progress
};
asio::awaitable<void> copy_file_tasks(remote_host& host, std::vector<file_task> tasks, bool upload,
                                      const copy_options& o, progress& p, transfer_stats& stats);
// Counts a failure and keeps its message; the first one that is a lost
// connection is kept in stats.connection_lost.
void record_failure(transfer_stats& stats, progress& p, const core::error& e);

}  // namespace tunnel::transfer
