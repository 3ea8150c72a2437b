#include "shell/terminal_mode.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::shell {

std::optional<window_size> read_window_size(int fd) noexcept {
    winsize ws{};
    if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return std::nullopt;
    return window_size{ws.ws_col, ws.ws_row};
}

bool is_terminal(int fd) noexcept {
    return ::isatty(fd) == 1;
}

core::result<raw_mode> raw_mode::enter(int fd) {
    termios saved{};
    if (::tcgetattr(fd, &saved) != 0)
        return core::fail(core::errc::io_error, fmt::format("cannot read the terminal settings: {}",
                                                            std::strerror(errno)));
    termios raw = saved;
    // OpenSSH's enter_raw_mode(): no line editing, echo, signals or output
    // processing; bytes pass one at a time.
    raw.c_iflag |= IGNPAR;
    raw.c_iflag &= ~(ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF | IUCLC);
    raw.c_lflag &= ~(ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
    raw.c_oflag &= ~OPOST;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(fd, TCSADRAIN, &raw) != 0)
        return core::fail(
            core::errc::io_error,
            fmt::format("cannot put the terminal in raw mode: {}", std::strerror(errno)));
    return raw_mode(fd, saved);
}

raw_mode& raw_mode::operator=(raw_mode&& other) noexcept {
    if (this != &other) {
        restore();
        fd_ = std::exchange(other.fd_, -1);
        saved_ = other.saved_;
    }
    return *this;
}

void raw_mode::restore() noexcept {
    if (fd_ < 0) return;
    while (::tcsetattr(fd_, TCSADRAIN, &saved_) != 0 && errno == EINTR) {
    }
    fd_ = -1;
}

file_flags_guard::file_flags_guard(std::initializer_list<int> fds) noexcept {
    for (int fd : fds) {
        int flags = ::fcntl(fd, F_GETFL);
        if (flags >= 0) saved_.emplace_back(fd, flags);
    }
}

file_flags_guard::~file_flags_guard() {
    for (auto [fd, flags] : saved_) ::fcntl(fd, F_SETFL, flags);
}

}  // namespace tunnel::shell
