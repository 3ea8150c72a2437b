// SHA-256 of files on either side: --verify compares both ends after a copy,
// --checksum decides whether a file is unchanged.
#pragma once

#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "sftp/client.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::transfer {

// SHA-256 of a local file, hex.
[[nodiscard]] core::result<std::string> sha256_file(const std::string& path);

// SHA-256 of a remote file: `sha256sum` when the account runs commands, else
// read back over SFTP.
asio::awaitable<core::result<std::string>> sha256_remote(remote_host& host, sftp::client& c,
                                                         std::string path);

// Compares the SHA-256 of `local` and `remote`; an io_error naming both
// (with the first 16 hex digits of each) when they differ.
asio::awaitable<core::result<void>> verify_same_content(remote_host& host, sftp::client& c,
                                                        const std::string& local,
                                                        const std::string& remote);

}  // namespace tunnel::transfer
