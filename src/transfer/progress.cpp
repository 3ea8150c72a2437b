#include "transfer/progress.hpp"

#include <cstdio>

#include <fmt/format.h>

namespace tunnel::transfer {

std::string human_bytes(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

progress::progress(bool draw) : draw_(draw), start_(std::chrono::steady_clock::now()) {}

progress::~progress() {
    finish();
}

double progress::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void progress::start_file(const std::string& name) {
    current_ = name;
    draw(false);
}

void progress::advance(std::uint64_t bytes) {
    done_ += bytes;
    moved_ += bytes;
    draw(false);
}

void progress::resumed(std::uint64_t bytes) {
    done_ += bytes;
    draw(false);
}

void progress::notice(std::string_view line) {
    const bool was_drawn = drawn_;
    finish();
    fmt::print(stderr, "tunnel: {}\n", line);
    std::fflush(stderr);
    if (was_drawn) draw(true);
}

void progress::start_again() {
    total_ = 0;
    done_ = 0;
    moved_ = 0;
    current_.clear();
}

void transfer_stats::start_again() {
    skipped = 0;
    failed = 0;
    errors.clear();
    only_input_errors = true;
    connection_lost.reset();
}

void progress::draw(bool force) {
    if (!draw_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    drawn_ = true;
    double secs = std::max(1e-3, std::chrono::duration<double>(now - start_).count());
    double rate = static_cast<double>(done_) / secs;
    std::string eta = "--:--";
    if (rate > 0 && total_ > done_) {
        auto left = static_cast<long>(static_cast<double>(total_ - done_) / rate);
        eta = fmt::format("{}:{:02}", left / 60, left % 60);
    }
    int pct =
        total_ ? static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_))
               : 100;
    std::string name =
        current_.size() > 40 ? "..." + current_.substr(current_.size() - 37) : current_;
    fmt::print(stderr, "\r\033[K{:<40} {:>10} / {:<10} {:3}% {:>10}/s ETA {}", name,
               human_bytes(done_), human_bytes(total_), pct,
               human_bytes(static_cast<std::uint64_t>(rate)), eta);
    std::fflush(stderr);
}

void progress::finish() {
    if (draw_ && drawn_) {
        fmt::print(stderr, "\r\033[K");
        std::fflush(stderr);
        drawn_ = false;
    }
}

}  // namespace tunnel::transfer
