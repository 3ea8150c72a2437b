// Where `tunnel connect` gets its tunnel token, and when it needs a new one
// (docs/relay-client.md "Tokens that outlive themselves"):
//
//   token_source src({.file = "~/.config/tunnel/token"});      // or .command = "vault read ..."
//   auto t = src.current();         // read once; again when the file changed
//   auto fresh = src.fetch();       // the file again, or the command run now
//
// A token file is re-read when its size or modification time changes; a
// token command (`--token-command`, run by /bin/sh) prints a fresh token on
// stdout and exits 0 within its timeout. Either way the token must be one
// word of at most 16 KiB; it is never logged.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace tunnel::relay {

struct token_source_options {
    std::string file;     // --token-file
    std::string command;  // --token-command (exactly one of the two)
    std::chrono::milliseconds command_timeout{30'000};
};

class token_source {
  public:
    // Checks the options (exactly one source); nothing is read yet.
    [[nodiscard]] static core::result<token_source> create(token_source_options options);

    // The token to attach with now: the last one read, unless there is none
    // yet, the file changed, or it expires within `margin` (then fetched).
    [[nodiscard]] core::result<std::string> current(std::chrono::seconds margin = {});
    // Reads the file, or runs the command, now (blocking: see fetch_async).
    [[nodiscard]] core::result<std::string> fetch();
    // The same without blocking the event loop: a command's output is read
    // on it (the tunnel keeps moving bytes meanwhile). One at a time.
    [[nodiscard]] asio::awaitable<core::result<std::string>> fetch_async();
    // Kills a command fetch_async is running (its process group); the fetch
    // then fails with "stopped", and later ones too.
    void cancel();
    // True when the file's size or mtime differs from when it was last read
    // (always false for a command).
    [[nodiscard]] bool file_changed() const;
    [[nodiscard]] bool is_command() const noexcept { return !options_.command.empty(); }
    [[nodiscard]] const std::string& last() const noexcept { return last_; }
    // The tenant (`sub`) of the first token read; every later token must be
    // for it too (a tunnel keeps its tenant: it is the SSH user), else the
    // fetch fails and the token in use stays.
    [[nodiscard]] const std::string& tenant() const noexcept { return tenant_; }

  private:
    explicit token_source(token_source_options o) : options_(std::move(o)) {}
    // Makes `token` the one in use, unless it is for another tenant.
    [[nodiscard]] core::result<std::string> adopt(std::string token);
    token_source_options options_;
    std::string last_;
    std::string tenant_;
    std::optional<std::pair<std::int64_t, std::int64_t>> stamp_;  // size, mtime ns
    int child_ = -1;                                              // the command fetch_async runs
    bool cancelled_ = false;
};

// The token's `exp` claim, read without verifying anything (the relay
// verifies); none when absent or unreadable.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> token_expiry(
    std::string_view token);

// How long before `exp` a token is renewed: a quarter of its lifetime
// (from `iat`, else from now), at least 1 s and at most 5 min.
[[nodiscard]] std::chrono::seconds renewal_margin(std::string_view token);

// Runs `command` with /bin/sh -c, stdout captured (at most 16 KiB), stderr
// passed through, killed after `timeout`; the trimmed output, which must be
// one word. The message of a failure names the command's exit status, never
// its output.
[[nodiscard]] core::result<std::string> run_token_command(const std::string& command,
                                                          std::chrono::milliseconds timeout);

}  // namespace tunnel::relay
