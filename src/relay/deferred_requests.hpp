// Requests kept across a graceful restart (docs/relay.md "What survives a
// restart"): with `queue.state_file` set, a request still waiting for a
// leased name's tunnel when the relay shuts down is written to SQLite (its
// caller gets 202 Accepted: it will be delivered, and its answer cannot
// reach the caller), and after the restart it is delivered once the name is
// published again, through the same path as a public request (admission,
// visitor access, limits), within queue.max_wait of the restart.
//
// The store is a table of rows; every call is thread-safe. The file is
// created 0600: it holds the requests' heads and bodies (credentials too).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "usage/sqlite.hpp"

namespace tunnel::relay {

class relay_state;

struct deferred_request {
    std::int64_t id = 0;  // the store's (0: not saved yet)
    std::string tenant;
    std::string name;
    std::string client_ip;  // the caller's, for forwarding fields and visitor rules
    bool https = false;     // how the caller reached the relay
    std::string request;    // the head as received (Connection: close) and the whole body
    std::chrono::system_clock::time_point saved{};
};

class deferred_store {
  public:
    // Opens (creating) the SQLite file at `path`, mode 0600.
    [[nodiscard]] static core::result<std::unique_ptr<deferred_store>> open(
        const std::string& path);

    [[nodiscard]] core::result<void> save(const deferred_request& r);
    [[nodiscard]] core::result<std::vector<deferred_request>> load();
    [[nodiscard]] core::result<void> remove(std::int64_t id);
    [[nodiscard]] const std::string& path() const noexcept { return db_.path(); }

  private:
    explicit deferred_store(usage::sqlite_db db) : db_(std::move(db)) {}
    std::mutex mutex_;
    usage::sqlite_db db_;
};

// At a graceful shutdown, for a request still waiting for tenant/name (its
// head read, its body in `conn`'s buffer): saves it and answers the caller
// 202 Accepted. False (nothing sent) when it cannot be kept: a chunked body,
// a body not fully read yet, or the store failed; the caller then answers
// 503 as without a store.
struct public_conn;
struct http_head;
[[nodiscard]] asio::awaitable<bool> defer_request(relay_state& relay, public_conn& conn,
                                                  const http_head& head, const std::string& tenant,
                                                  const std::string& name);

// Delivers what the store holds (at the relay's start, on worker 0): each
// request goes once its name is published here (or, in a cluster, attached
// to another relay), through the public request path; its answer is logged
// and audited (`deferred_delivered`), and the row removed. Rows not
// delivered within queue.max_wait of the start are dropped (`deferred_expired`).
asio::awaitable<void> replay_deferred(std::shared_ptr<relay_state> relay);

}  // namespace tunnel::relay
