// A real terminal for tests: a tmux server of the test's own running one
// pane, with keys typed into it and its screen read back (ARCHITECTURE §7:
// end-to-end tests in tmux, as mosh does).
//
//   tmux_pane pane(dir, dir.file("pane.sh"));   // sh pane.sh in a 100x30 pane
//   ASSERT_TRUE(pane.wait_for("Password: "));
//   pane.type("secret");
//   pane.enter();
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/process.hpp"

namespace tunnel::test {

// A tmux server of our own, killed when the test ends. Its socket lives in
// the test's temp dir (-S), so it is unique and goes away with the dir.
class tmux_pane {
  public:
    tmux_pane(const temp_dir& dir, const std::string& script)
        : socket_(dir.file("tmux.sock")), conf_(dir.file("tmux.conf")) {
        EXPECT_TRUE(write_text_file(
            conf_, "set -g status off\nset -g default-shell /bin/sh\nset -g history-limit 5000\n"));
        auto r = tmux({"new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "sh " + script});
        started_ = r.ok();
        EXPECT_TRUE(started_) << r.describe();
    }
    ~tmux_pane() { (void)tmux({"kill-server"}); }

    run_result tmux(std::vector<std::string> args) const {
        std::vector<std::string> argv = {"tmux", "-S", socket_, "-f", conf_};
        argv.insert(argv.end(), args.begin(), args.end());
        run_options ro;
        ro.timeout = std::chrono::seconds(10);
        return run(argv, ro);
    }
    // Types `text` literally.
    void type(const std::string& text) const { (void)tmux({"send-keys", "-t", "t", "-l", text}); }
    void enter() const { (void)tmux({"send-keys", "-t", "t", "Enter"}); }
    std::string screen() const { return tmux({"capture-pane", "-p", "-t", "t"}).out; }
    std::string pane_tty() const {
        auto r = tmux({"display-message", "-p", "-t", "t", "#{pane_tty}"});
        while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
        return r.out;
    }
    bool resize(int columns, int rows) const {
        return tmux({"resize-window", "-t", "t", "-x", std::to_string(columns), "-y",
                     std::to_string(rows)})
            .ok();
    }
    // Polls the screen until it contains `needle`.
    bool wait_for(const std::string& needle,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (screen().find(needle) != std::string::npos) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }
    [[nodiscard]] bool started() const noexcept { return started_; }

  private:
    std::string socket_;
    std::string conf_;
    bool started_ = false;
};

// Polls until `path` exists and returns its text (nullopt after `timeout`).
[[nodiscard]] std::optional<std::string> wait_for_file(
    const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace tunnel::test
