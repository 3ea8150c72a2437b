// Runs a transfer (`cp` or `sync`) on a fresh connection and, when the
// connection is lost part way, connects again after a backoff and runs it
// again with --resume: files finished before are left alone, the file that
// was cut continues from the verified tail of its temp file, and nothing is
// ever half-written under a destination name.
//
//   auto r = co_await run_with_reconnects(ex, target, sftp_options, {.retries = 5, ...},
//                                         meter, stats,
//       [&](remote_host& host, bool resuming) { return upload(host, ..., resuming ...); });
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "core/backoff.hpp"
#include "core/error.hpp"
#include "sftp/client.hpp"
#include "ssh/connect_options.hpp"
#include "transfer/progress.hpp"
#include "transfer/remote_host.hpp"
#include "transfer/retry_policy.hpp"

namespace tunnel::transfer {

struct reconnect_options {
    unsigned retries = 0;  // 0: one attempt, as without --retries
    core::backoff_policy backoff = default_retry_backoff();
    core::random_source random;                        // empty: a seeded generator
    std::function<void(const retry_event&)> on_retry;  // before each wait
    // The link manager's warm sessions, tried at each (re)connect before a
    // session of our own (remote_host::connect).
    std::shared_ptr<pooled_access> pooled;
};

// One attempt: the whole transfer on `host`. `resuming` is true after a
// reconnect (the caller then copies with resume on).
using transfer_attempt =
    std::function<asio::awaitable<core::result<void>>(remote_host& host, bool resuming)>;

// Connects to `target` and runs `attempt` until it ends without losing the
// connection (connection_lost() of its error or of a file's failure in
// `stats`) or the retries are spent. Between attempts `stats` and `p` start
// the failures and the byte counts over (what finished stays counted).
// Returns the last attempt's result; a loss recorded per file stays in
// stats.connection_lost.
asio::awaitable<core::result<void>> run_with_reconnects(
    asio::any_io_executor executor, ssh::connect_options target, sftp::client_options sftp,
    reconnect_options options, progress& p, transfer_stats& stats, transfer_attempt attempt);

// What the retries of one `cp` or `sync` saw, for its last lines and its
// JSON: record() is the on_retry of its reconnect_options.
struct retry_log {
    std::vector<std::string> errors;  // the cause of each retry
    bool ever_connected = false;      // some attempt before the last one got a session

    void record(const retry_event& e);
    // The advice line when the transfer ended because the connection went
    // away (after retries, or a file cut off), else nullopt.
    [[nodiscard]] std::optional<std::string> lost_advice(const std::optional<core::error>& fatal,
                                                         const transfer_stats& stats) const;
    // "retries", "retry_errors" and "error" (fatal and/or the advice).
    void add_to(nlohmann::json& j, const std::optional<core::error>& fatal,
                const std::optional<std::string>& lost) const;
};

}  // namespace tunnel::transfer
