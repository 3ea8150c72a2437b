// One regular file each way over SFTP, never leaving a partial file under the
// destination name: data goes to a hidden temp name beside the target
// (`.NAME.tunnel-part`), is fsynced, gets its mode and times, and is renamed
// over the target. `--resume` continues from that temp file after checking
// that its tail matches the source.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "sftp/client.hpp"
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

enum class file_outcome { copied, skipped };

// One regular file each way. `remote`/`local` name the final destination.
asio::awaitable<core::result<file_outcome>> upload_file(remote_host& host, sftp::client& c,
                                                        std::string local, std::string remote,
                                                        const copy_options& o, progress& p);
asio::awaitable<core::result<file_outcome>> download_file(remote_host& host, sftp::client& c,
                                                          std::string remote, std::string local,
                                                          const copy_options& o, progress& p);

}  // namespace tunnel::transfer
