// Copies files between this machine and a remote host over SFTP, never
// leaving a partial file under the destination name: data goes to a hidden
// temp name beside the target (`.NAME.tunnel-part`), is fsynced, gets its
// mode and times, and is renamed over the target. `--resume` continues from
// that temp file after checking that its tail matches the source.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "transfer/filter.hpp"
#include "transfer/progress.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::transfer {

struct copy_options {
    bool recursive = false;
    bool preserve = false;              // -p: mode and mtime (sync always preserves)
    std::optional<std::uint32_t> mode;  // --mode: permission bits for created files
    bool resume = false;
    bool verify = false;    // SHA-256 of both ends compared after each copy
    bool checksum = false;  // unchanged = same SHA-256 (else same size and mtime)
    unsigned jobs = 1;      // files copied concurrently
    // Uploads: owner and group of everything copied, set with `sudo -n chown`
    // on the host after the copy (the CLI requires --sudo for them).
    std::optional<std::string> owner, group;
    bool always = false;  // copy without checking whether the destination is unchanged
    // Uploads of at least stream_threshold bytes (without --resume) use this
    // many SFTP channels at once.
    unsigned streams = 4;
    std::uint64_t stream_threshold = 64u << 20;
    std::chrono::microseconds stream_min_rtt{2000};  // ... when the link is at least this far away
};

// The temp name a copy to `path` writes first.
[[nodiscard]] std::string temp_path_for(const std::string& path);

// Where a resumed copy restarts, given the temp file's size: pipelined
// writes land out of order, so only what is below the highest written byte
// minus one window of requests is known to be complete.
[[nodiscard]] std::uint64_t resume_offset(std::uint64_t temp_size, std::uint64_t window) noexcept;

// SHA-256 of a local file, hex.
[[nodiscard]] core::result<std::string> sha256_file(const std::string& path);
// SHA-256 of a remote file: `sha256sum` when the account runs commands, else
// read back over SFTP.
asio::awaitable<core::result<std::string>> sha256_remote(remote_host& host, sftp::client& c,
                                                         std::string path);

enum class file_outcome { copied, skipped };

// One regular file each way. `remote`/`local` name the final destination.
asio::awaitable<core::result<file_outcome>> upload_file(remote_host& host, sftp::client& c,
                                                        std::string local, std::string remote,
                                                        const copy_options& o, progress& p);
asio::awaitable<core::result<file_outcome>> download_file(remote_host& host, sftp::client& c,
                                                          std::string remote, std::string local,
                                                          const copy_options& o, progress& p);

// What `tunnel cp` does: every source (a file, or a tree with -r) to `dest`,
// scp's rules for naming (an existing directory receives sources by name).
// Per-file failures are counted in `stats` and the rest continue.
asio::awaitable<core::result<void>> upload(remote_host& host, std::vector<std::string> sources,
                                           std::string dest, const copy_options& o, progress& p,
                                           transfer_stats& stats);
asio::awaitable<core::result<void>> download(remote_host& host, std::vector<std::string> sources,
                                             std::string dest, const copy_options& o, progress& p,
                                             transfer_stats& stats);

// Copies each {from, to} pair (regular files) on up to o.jobs SFTP channels.
struct file_task {
    std::string from;
    std::string to;
};
asio::awaitable<void> copy_file_tasks(remote_host& host, std::vector<file_task> tasks, bool upload,
                                      const copy_options& o, progress& p, transfer_stats& stats);
// Counts a failure and keeps its message.
void record_failure(transfer_stats& stats, progress& p, const core::error& e);

// A tree as listed on either side, paths '/'-separated relative to its root.
struct tree_entry {
    enum class kind { file, dir, link, other };
    std::string rel;
    kind type = kind::other;
    std::uint64_t size = 0;
    std::uint32_t mode = 0;  // permission bits
    std::int64_t mtime = 0;
    std::string link_target;  // links only (filled by the local walk; remote on demand)
};

// Lists `root` (a directory) depth-first, parents before children, skipping
// what `filter` excludes (an excluded directory is not entered).
[[nodiscard]] core::result<std::vector<tree_entry>> list_local_tree(const std::string& root,
                                                                    const path_filter* filter);
asio::awaitable<core::result<std::vector<tree_entry>>> list_remote_tree(sftp::client& c,
                                                                        std::string root,
                                                                        const path_filter* filter);

}  // namespace tunnel::transfer
