// A Redis client on Asio (docs/cluster.md "The client"): one connection kept
// up by a supervisor that reconnects with backoff after it drops, asks the
// sentinels for the master again first (redis-sentinel:// addresses), and
// sends AUTH and SELECT from the URL before anything else (the password is
// never logged). Commands are coroutines returning core::result<reply>, each
// with a deadline; a command that comes while Redis is down waits for the
// connection until its deadline, then fails (callers keep working without
// Redis). A command that times out closes the connection: a server that
// does not answer one command will not answer the next either.
//
// A client either sends commands or holds subscriptions (Redis' rule for a
// subscribed connection): make one of each.
//
//   auto redis = redis_client::create(ex, *parse_redis_address(url), {});
//   redis->start();
//   auto r = co_await redis->command({"SET", "k", "v"});
//
// Thread-safe: every call hops onto the client's strand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_address.hpp"
#include "cluster/redis_connection.hpp"
#include "cluster/redis_reply.hpp"
#include "core/asio.hpp"
#include "core/backoff.hpp"
#include "core/error.hpp"
#include "core/wake_signal.hpp"

namespace tunnel::cluster {

struct redis_options {
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds command_timeout{2000};  // when a command names none
    core::backoff_policy reconnect{std::chrono::milliseconds(100), std::chrono::seconds(5), 0};
    std::size_t max_in_flight = 10000;  // commands queued on the connection
    std::string name = "redis";         // in log lines ("cluster redis")
};

class redis_client : public std::enable_shared_from_this<redis_client> {
  public:
    using message_handler = std::function<void(const std::string& channel, const std::string&)>;

    [[nodiscard]] static std::shared_ptr<redis_client> create(asio::any_io_executor ex,
                                                              redis_address address,
                                                              redis_options options = {});
    redis_client(const redis_client&) = delete;
    redis_client& operator=(const redis_client&) = delete;
    ~redis_client();

    // Starts the supervisor (connects in the background). Idempotent.
    void start();
    // Closes the connection and stops reconnecting; waiting commands fail.
    void stop();

    // One command, e.g. {"SET", key, value, "PX", "1000"}.
    [[nodiscard]] asio::awaitable<core::result<reply>> command(std::vector<std::string> args);
    [[nodiscard]] asio::awaitable<core::result<reply>> command(std::vector<std::string> args,
                                                               std::chrono::milliseconds timeout);

    // SUBSCRIBE channel, now and after every reconnect; `on_message` runs
    // on the client's strand for each message.
    void subscribe(std::string channel, message_handler on_message);

    // Called (on the strand) after every successful (re)connection, once
    // AUTH, SELECT and subscriptions are done: the place to resynchronise.
    void on_connected(std::function<void()> handler);

    // Waits until connected or the timeout passes.
    [[nodiscard]] asio::awaitable<bool> wait_connected(std::chrono::milliseconds timeout);

    [[nodiscard]] bool connected() const noexcept { return ready_; }
    // How many connections were made so far (1 after the first).
    [[nodiscard]] std::uint64_t connections() const noexcept { return connections_; }
    [[nodiscard]] const redis_address& address() const noexcept { return address_; }
    [[nodiscard]] asio::strand<asio::any_io_executor> strand() const { return strand_; }

  private:
    redis_client(asio::any_io_executor ex, redis_address address, redis_options options);

    asio::awaitable<void> supervise();
    // Sentinel lookup (when configured), connect, AUTH, SELECT, role check.
    asio::awaitable<core::result<std::shared_ptr<redis_connection>>> connect_once();
    asio::awaitable<core::result<redis_endpoint>> ask_sentinels(
        std::chrono::steady_clock::time_point deadline);
    // A command on `conn` (ready or not), on the strand.
    asio::awaitable<core::result<reply>> send_on(std::shared_ptr<redis_connection> conn,
                                                 std::vector<std::string> args,
                                                 std::chrono::steady_clock::time_point deadline);
    asio::awaitable<core::result<reply>> run_command(std::vector<std::string> args,
                                                     std::chrono::milliseconds timeout);
    asio::awaitable<bool> wait_ready(std::chrono::steady_clock::time_point deadline);
    void wake_waiters();
    void connection_closed(const std::shared_ptr<redis_connection>& conn);

    asio::strand<asio::any_io_executor> strand_;
    redis_address address_;
    redis_options options_;
    std::string where_;  // describe(address_), no password

    std::shared_ptr<redis_connection> conn_;
    std::atomic<bool> ready_{false};
    bool started_ = false;
    bool stopped_ = false;
    std::atomic<std::uint64_t> connections_{0};
    std::string last_error_;
    core::wake_signal supervisor_wake_;
    asio::steady_timer backoff_timer_;
    std::list<asio::steady_timer*> waiters_;  // commands waiting for the connection
    std::map<std::string, message_handler> subscriptions_;
    std::vector<std::function<void()>> connected_handlers_;
};

}  // namespace tunnel::cluster
