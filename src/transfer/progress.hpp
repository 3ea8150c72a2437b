// Progress for transfers: bytes and files done against a total, drawn as one
// line on stderr when it is a terminal (never when piped), at most 10 times a
// second; counters for the --json summary.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

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
};

class progress {
  public:
    // `draw`: usually isatty(2).
    explicit progress(bool draw);
    ~progress();
    void add_total(std::uint64_t bytes) { total_ += bytes; }
    void start_file(const std::string& name);
    void advance(std::uint64_t bytes);
    // Clears the line (call before printing anything else).
    void finish();

    [[nodiscard]] std::uint64_t done() const noexcept { return done_; }
    [[nodiscard]] double seconds() const;

  private:
    void draw(bool force);
    bool draw_;
    std::uint64_t total_ = 0;
    std::uint64_t done_ = 0;
    std::string current_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_{};
    bool drawn_ = false;
};

// "12.3 MiB"
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);

}  // namespace tunnel::transfer
