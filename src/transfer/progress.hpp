// Progress for transfers: bytes and files done against a total, drawn as one
// line on stderr when it is a terminal (never when piped), at most 10 times a
// second; counters for the --json summary.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/error.hpp"

namespace tunnel::transfer {

struct transfer_stats {
    std::uint64_t files = 0;    // copied (or, in a dry run, that would be)
    std::uint64_t bytes = 0;    // payload bytes sent or received
    std::uint64_t skipped = 0;  // unchanged, left alone
    std::uint64_t failed = 0;
    std::uint64_t deleted = 0;  // sync --delete
    std::uint64_t dirs = 0;     // directories created
    std::uint64_t links = 0;    // symlinks created
    std::vector<std::string> errors;
    // Every failure so far was bad input (missing path, not a directory, ...).
    bool only_input_errors = true;
    // The first failure that was the connection going away (see
    // connection_lost() in retry_policy.hpp), if any.
    std::optional<core::error> connection_lost;

    // For --retries: destination paths copied or linked by an earlier attempt
    // of this run, which a later attempt leaves alone and does not count
    // again. Filled only when track_finished is set.
    bool track_finished = false;
    std::unordered_set<std::string> finished;
    [[nodiscard]] bool finished_before(const std::string& dest) const {
        return track_finished && finished.count(dest) > 0;
    }
    void mark_finished(const std::string& dest) {
        if (track_finished) finished.insert(dest);
    }

    // Before another attempt after a reconnect: what the attempt will find
    // again (unchanged files, failures) starts over; what was done stays
    // counted (files, deleted, dirs, links).
    void start_again();
};

class progress {
  public:
    // `draw`: usually isatty(2).
    explicit progress(bool draw);
    ~progress();
    void add_total(std::uint64_t bytes) { total_ += bytes; }
    void start_file(const std::string& name);
    // Bytes that went over the connection.
    void advance(std::uint64_t bytes);
    // Bytes already at the destination (a resumed temp file, a file an
    // earlier attempt finished): done, but not moved.
    void resumed(std::uint64_t bytes);
    // Clears the line (call before printing anything else).
    void finish();
    // Prints "tunnel: LINE" on stderr on a line of its own (the bar, if
    // drawn, is cleared first and drawn again after).
    void notice(std::string_view line);
    // Before another attempt after a reconnect: the attempt adds its totals
    // and progress again.
    void start_again();

    [[nodiscard]] std::uint64_t done() const noexcept { return done_; }
    [[nodiscard]] std::uint64_t moved() const noexcept { return moved_; }
    [[nodiscard]] double seconds() const;

  private:
    void draw(bool force);
    bool draw_;
    std::uint64_t total_ = 0;
    std::uint64_t done_ = 0;
    std::uint64_t moved_ = 0;  // since the last start_again()
    std::string current_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_{};
    bool drawn_ = false;
};

// "12.3 MiB"
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);

}  // namespace tunnel::transfer
