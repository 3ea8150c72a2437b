// Raw mode and the fd flags on a real pseudo-terminal pair (openpty): set
// while the guard lives, exactly restored when it goes.
#include "shell/terminal_mode.hpp"

#include <fcntl.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

namespace tunnel::shell {
namespace {

struct pty_pair {
    int master = -1;
    int slave = -1;
    pty_pair() {
        winsize ws{};
        ws.ws_col = 100;
        ws.ws_row = 30;
        if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0) master = slave = -1;
    }
    ~pty_pair() {
        if (master >= 0) ::close(master);
        if (slave >= 0) ::close(slave);
    }
};

bool same(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_lflag == b.c_lflag &&
           a.c_cflag == b.c_cflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

TEST(TerminalMode, RawModeIsSetAndRestored) {
    pty_pair p;
    ASSERT_GE(p.slave, 0) << "openpty failed";
    termios before{};
    ASSERT_EQ(::tcgetattr(p.slave, &before), 0);
    ASSERT_TRUE(before.c_lflag & ECHO);
    {
        auto raw = raw_mode::enter(p.slave);
        ASSERT_TRUE(raw) << raw.error().message;
        termios during{};
        ASSERT_EQ(::tcgetattr(p.slave, &during), 0);
        EXPECT_FALSE(during.c_lflag & (ECHO | ICANON | ISIG | IEXTEN));
        EXPECT_FALSE(during.c_iflag & (ICRNL | IXON));
        EXPECT_FALSE(during.c_oflag & OPOST);
        EXPECT_EQ(during.c_cc[VMIN], 1);
        auto moved = std::move(*raw);  // the moved-from guard restores nothing
    }
    termios after{};
    ASSERT_EQ(::tcgetattr(p.slave, &after), 0);
    EXPECT_TRUE(same(before, after));
}

TEST(TerminalMode, RestoreIsIdempotent) {
    pty_pair p;
    ASSERT_GE(p.slave, 0);
    termios before{};
    ASSERT_EQ(::tcgetattr(p.slave, &before), 0);
    auto raw = raw_mode::enter(p.slave);
    ASSERT_TRUE(raw);
    raw->restore();
    termios mid{};
    ASSERT_EQ(::tcgetattr(p.slave, &mid), 0);
    EXPECT_TRUE(same(before, mid));
    // A later change is not undone by the destructor.
    termios changed = mid;
    changed.c_lflag &= ~ECHO;
    ASSERT_EQ(::tcsetattr(p.slave, TCSANOW, &changed), 0);
    raw->restore();
    termios after{};
    ASSERT_EQ(::tcgetattr(p.slave, &after), 0);
    EXPECT_FALSE(after.c_lflag & ECHO);
}

TEST(TerminalMode, NotATerminalIsAnError) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    EXPECT_FALSE(is_terminal(fds[0]));
    EXPECT_FALSE(raw_mode::enter(fds[0]));
    EXPECT_FALSE(read_window_size(fds[0]));
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST(TerminalMode, WindowSizeFollowsTheTerminal) {
    pty_pair p;
    ASSERT_GE(p.slave, 0);
    EXPECT_TRUE(is_terminal(p.slave));
    auto size = read_window_size(p.slave);
    ASSERT_TRUE(size);
    EXPECT_EQ(size->columns, 100);
    EXPECT_EQ(size->rows, 30);
    winsize ws{};
    ws.ws_col = 132;
    ws.ws_row = 43;
    ASSERT_EQ(::ioctl(p.master, TIOCSWINSZ, &ws), 0);
    size = read_window_size(p.slave);
    ASSERT_TRUE(size);
    EXPECT_EQ(size->columns, 132);
    EXPECT_EQ(size->rows, 43);
}

TEST(TerminalMode, FileFlagsGuardPutsNonBlockingBack) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const int before = ::fcntl(fds[0], F_GETFL);
    ASSERT_FALSE(before & O_NONBLOCK);
    {
        file_flags_guard guard({fds[0], fds[1]});
        ASSERT_EQ(::fcntl(fds[0], F_SETFL, before | O_NONBLOCK), 0);
    }
    EXPECT_EQ(::fcntl(fds[0], F_GETFL), before);
    ::close(fds[0]);
    ::close(fds[1]);
}

}  // namespace
}  // namespace tunnel::shell
