// Small POSIX helpers the transfer code shares: an owning file descriptor,
// errno turned into a core::error that names the path, positioned reads and
// free space of a local file system.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::transfer {

// ENOENT/ENOTDIR -> not_found, EACCES/EPERM -> permission_denied,
// ENOSPC/EDQUOT -> resource_exhausted, else io_error: "WHAT PATH: strerror".
[[nodiscard]] core::error errno_error(std::string_view what, const std::string& path,
                                      int e = errno);

// Closes the descriptor it holds.
class fd_guard {
  public:
    explicit fd_guard(int fd = -1) noexcept : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    [[nodiscard]] int get() const noexcept { return fd_; }
    void reset() noexcept;

  private:
    int fd_;
};

// Up to `n` bytes at `offset` (fewer at end of file); `path` names errors.
[[nodiscard]] core::result<std::string> pread_block(int fd, std::uint64_t offset, std::size_t n,
                                                    const std::string& path);

// Free space at a local directory, or nullopt if unknown.
[[nodiscard]] std::optional<std::uint64_t> local_free(const std::string& dir);

}  // namespace tunnel::transfer
