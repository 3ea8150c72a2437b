// The local terminal while an interactive session runs: raw mode (as
// OpenSSH's enter_raw_mode sets it) undone by RAII on every exit path, the
// file status flags (O_NONBLOCK, which asio sets on a descriptor shared with
// the shell that started us) put back, and the window size.
//
//   shell::file_flags_guard flags({0, 1, 2});   // restores O_NONBLOCK etc. at scope exit
//   auto raw = shell::raw_mode::enter(0);       // restores the termios at scope exit
#pragma once

#include <termios.h>

#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::shell {

struct window_size {
    int columns = 80;
    int rows = 24;
};

// The terminal size on `fd` (TIOCGWINSZ); nullopt when fd is not a terminal
// or reports 0 columns.
[[nodiscard]] std::optional<window_size> read_window_size(int fd) noexcept;

// isatty(fd).
[[nodiscard]] bool is_terminal(int fd) noexcept;

// Puts a terminal in raw mode; the destructor restores the settings it
// found (TCSADRAIN, so output already written is shown first).
class raw_mode {
  public:
    // Fails when fd is not a terminal or its settings cannot be changed.
    [[nodiscard]] static core::result<raw_mode> enter(int fd);

    raw_mode(raw_mode&& other) noexcept : fd_(std::exchange(other.fd_, -1)), saved_(other.saved_) {}
    raw_mode& operator=(raw_mode&& other) noexcept;
    raw_mode(const raw_mode&) = delete;
    raw_mode& operator=(const raw_mode&) = delete;
    ~raw_mode() { restore(); }

    // Restores now (idempotent).
    void restore() noexcept;

  private:
    raw_mode(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
    int fd_ = -1;
    termios saved_{};
};

// Saves the file status flags (fcntl F_GETFL) of each fd and sets them
// back on destruction. Descriptors that are closed are skipped.
class file_flags_guard {
  public:
    explicit file_flags_guard(std::initializer_list<int> fds) noexcept;
    file_flags_guard(const file_flags_guard&) = delete;
    file_flags_guard& operator=(const file_flags_guard&) = delete;
    ~file_flags_guard();

  private:
    std::vector<std::pair<int, int>> saved_;  // fd, flags
};

}  // namespace tunnel::shell
