// tunnel ui: the terminal dashboard of a running `tunnel up` (src/ui/ holds
// everything but the terminal). ncurses draws the frames the dashboard lays
// out; the terminal is given back on every way out: q, SIGINT, SIGTERM,
// SIGHUP, an exception, or the terminal going away.
#include <langinfo.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "link/control_server.hpp"
#include "ui/dashboard.hpp"

// Last, and without its function-like macros (erase(), move() ...), which
// would clash with the C++ headers above.
#define NCURSES_NOMACROS 1
#include <curses.h>

namespace tunnel::cli {

namespace {

volatile std::sig_atomic_t stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
    stop_signal = sig;
}

// SIGINT, SIGTERM and SIGHUP end the loop (poll() returns EINTR); ncurses
// leaves signals alone that already have a handler.
void catch_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: poll() must return
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

enum pair_id : short { pair_good = 1, pair_fair, pair_poor, pair_title };

// The terminal in curses mode while this lives.
class curses_screen {
  public:
    [[nodiscard]] static core::result<std::unique_ptr<curses_screen>> open() {
        SCREEN* s = ::newterm(nullptr, stdout, stdin);
        if (!s)
            return core::fail(core::errc::invalid_argument,
                              "cannot use this terminal (check TERM)");
        return std::unique_ptr<curses_screen>(new curses_screen(s));
    }
    ~curses_screen() {
        ::endwin();
        ::delscreen(screen_);
    }
    curses_screen(const curses_screen&) = delete;
    curses_screen& operator=(const curses_screen&) = delete;

    void draw(const std::vector<ui::screen_row>& rows) {
        ::erase();
        int y = 0;
        for (const auto& row : rows) {
            ::move(y++, 0);
            for (const auto& s : row) {
                ::attrset(attribute(s.look));
                ::addstr(s.text.c_str());
            }
        }
        ::attrset(A_NORMAL);
        ::refresh();
    }

  private:
    explicit curses_screen(SCREEN* s) : screen_(s) {
        ::set_term(s);
        ::cbreak();
        ::noecho();
        ::nonl();
        ::keypad(stdscr, TRUE);
        ::nodelay(stdscr, TRUE);
        ::set_escdelay(25);
        ::curs_set(0);
        if (::has_colors()) {
            ::start_color();
            ::use_default_colors();
            ::init_pair(pair_good, COLOR_GREEN, -1);
            ::init_pair(pair_fair, COLOR_YELLOW, -1);
            ::init_pair(pair_poor, COLOR_RED, -1);
            ::init_pair(pair_title, COLOR_CYAN, -1);
            colors_ = true;
        }
    }
    attr_t attribute(ui::style look) const {
        auto color = [&](short pair) { return colors_ ? COLOR_PAIR(pair) : A_NORMAL; };
        switch (look) {
            case ui::style::normal:
                return A_NORMAL;
            case ui::style::title:
                return A_BOLD | color(pair_title);
            case ui::style::header:
                return A_BOLD;
            case ui::style::selected:
                return A_REVERSE;
            case ui::style::good:
                return color(pair_good);
            case ui::style::fair:
                return color(pair_fair);
            case ui::style::poor:
                return color(pair_poor);
            case ui::style::error:
                return A_BOLD | color(pair_poor);
            case ui::style::dim:
                return A_DIM;
        }
        return A_NORMAL;
    }
    SCREEN* screen_;
    bool colors_ = false;
};

ui::key key_of(int ch) {
    switch (ch) {
        case KEY_UP:
        case 'k':
            return ui::key::up;
        case KEY_DOWN:
        case 'j':
            return ui::key::down;
        case 's':
            return ui::key::switch_transport;
        case 'r':
            return ui::key::restart;
        case 'l':
        case '\n':
        case '\r':
        case KEY_ENTER:
            return ui::key::log;
        case 27:  // Esc
        case KEY_BACKSPACE:
        case KEY_LEFT:
        case 'h':
            return ui::key::back;
        case 'q':
        case 'Q':
            return ui::key::quit;
        default:
            return ui::key::none;
    }
}

int run_ui(const std::string& control) {
    auto path = control.empty() ? link::default_control_path() : core::result<std::string>(control);
    if (!path) return report(path.error());
    if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
        fmt::print(stderr,
                   "tunnel ui: needs a terminal on stdin and stdout (for scripts: tunnel ls "
                   "--json, tunnel events)\n");
        return exit_usage;
    }
    auto d = ui::dashboard::connect(*path);
    if (!d) return report(d.error());
    std::setlocale(LC_ALL, "");
    d->view().unicode = std::string_view(::nl_langinfo(CODESET)) == "UTF-8";
    catch_stop_signals();
    auto screen = curses_screen::open();
    if (!screen) return report(screen.error());

    using clock = ui::clock;
    bool redraw = true;
    while (!stop_signal) {
        d->tick(clock::now());
        if (d->take_dirty() || redraw) {
            (*screen)->draw(d->frame(::getmaxx(stdscr), ::getmaxy(stdscr)));
            redraw = false;
        }
        auto fds = d->poll_entries();
        fds.push_back({STDIN_FILENO, POLLIN, 0});
        const int n = ::poll(fds.data(), fds.size(), d->timeout_ms(clock::now()));
        if (n < 0 && errno != EINTR) break;
        const auto now = clock::now();
        if (n > 0) {
            d->on_ready(fds, now);
            if (fds.back().revents & (POLLHUP | POLLERR | POLLNVAL)) break;  // the terminal went
        }
        for (int ch = ::getch(); ch != ERR; ch = ::getch()) {
            if (ch == KEY_RESIZE) {
                redraw = true;
                continue;
            }
            if (!d->on_key(key_of(ch), now)) return 0;
        }
    }
    return stop_signal ? 128 + stop_signal : 0;
}

}  // namespace

void add_ui_command(CLI::App& app, command_runner& run) {
    auto control = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "ui", "Terminal dashboard of the running `tunnel up`: links, transports, events");
    cmd->footer(
        "Keys: j/k or arrows select a link, s switches its preferred transport (to the next "
        "one), r restarts it, l shows its log (l or Esc: back), q quits.\n"
        "Example:\n  tunnel ui --control $XDG_RUNTIME_DIR/tunnel/control.sock");
    cmd->add_option("--control", *control,
                    "Control socket of the `tunnel up` to watch (default "
                    "$XDG_RUNTIME_DIR/tunnel/control.sock)");
    cmd->callback([control, &run] { run = [control] { return run_ui(*control); }; });
}

}  // namespace tunnel::cli
