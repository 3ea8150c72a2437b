#include "core/terminal_prompt.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tunnel::core {

namespace {

std::optional<std::string> from_tty(std::string_view prompt, bool echo = false) {
    int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    termios old{};
    bool restore = !echo && ::tcgetattr(fd, &old) == 0;
    if (restore) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!::write(fd, prompt.data(), prompt.size());
    std::string line;
    char c;
    while (line.size() < 8192 && ::read(fd, &c, 1) == 1 && c != '\n' && c != '\r')
        line.push_back(c);
    if (restore) {
        ::tcsetattr(fd, TCSAFLUSH, &old);
        (void)!::write(fd, "\n", 1);  // the user's Enter was not echoed
    }
    ::close(fd);
    return line;
}

std::optional<std::string> from_askpass(std::string_view prompt) {
    const char* prog = std::getenv("SSH_ASKPASS");
    if (!prog || !*prog) return std::nullopt;
    const char* require = std::getenv("SSH_ASKPASS_REQUIRE");
    const bool forced = require && std::strcmp(require, "force") == 0;
    if (!forced && !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY")) return std::nullopt;
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
    pid_t pid = ::fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) {
        ::dup2(out[1], 1);
        std::string p(prompt);
        ::execlp(prog, prog, p.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string answer;
    char buf[256];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0)
        answer.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
    while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
    return answer;
}

}  // namespace

std::optional<std::string> ask_terminal(std::string_view prompt, bool echo) {
    return from_tty(prompt, echo);
}

bool tell_terminal(std::string_view text) {
    int fd = ::open("/dev/tty", O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return false;
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n <= 0) break;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    ::close(fd);
    return true;
}

std::optional<std::string> ask_secret(std::string_view prompt) {
    const char* require = std::getenv("SSH_ASKPASS_REQUIRE");
    if (require && std::strcmp(require, "force") == 0) return from_askpass(prompt);
    if (auto t = from_tty(prompt)) return t;
    if (require && std::strcmp(require, "never") == 0) return std::nullopt;
    return from_askpass(prompt);
}

}  // namespace tunnel::core
