// One hiredis connection driven by Asio (docs/cluster.md "The client"): the
// adapter of our own that hiredis' ev hooks call. A redisAsyncContext's fd is
// watched by an asio::posix::stream_descriptor on the connection's strand;
// readiness calls redisAsyncHandleRead/Write. The context is owned here and
// freed exactly once: by us (close(), the destructor) or by hiredis itself
// when the server goes away, which we learn from the cleanup hook.
//
// Everything runs on the strand the connection was opened with; callers must
// be on it. redis_client (redis_client.hpp) is the only user.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_address.hpp"
#include "cluster/redis_reply.hpp"
#include "core/asio.hpp"
#include "core/error.hpp"
#include "core/wake_signal.hpp"

struct redisAsyncContext;

namespace tunnel::cluster {

class redis_connection : public std::enable_shared_from_this<redis_connection> {
  public:
    using strand = asio::strand<asio::any_io_executor>;
    // A reply or why none came (the connection closed first).
    using reply_handler = std::function<void(core::result<reply>)>;
    // A message on a subscribed channel: (channel, payload).
    using message_handler = std::function<void(const std::string&, const std::string&)>;

    // Resolves and connects within `timeout`. `on_closed` runs (on the
    // strand, possibly inside a hiredis call) when the connection ends for
    // any reason; it must not destroy the connection.
    [[nodiscard]] static asio::awaitable<core::result<std::shared_ptr<redis_connection>>> open(
        strand ex, redis_endpoint endpoint, std::chrono::milliseconds timeout,
        std::function<void()> on_closed);

    redis_connection(const redis_connection&) = delete;
    redis_connection& operator=(const redis_connection&) = delete;
    ~redis_connection();

    [[nodiscard]] bool alive() const noexcept { return ctx_ != nullptr; }
    [[nodiscard]] const redis_endpoint& endpoint() const noexcept { return endpoint_; }
    // Why the connection ended (hiredis' errstr), empty while alive.
    [[nodiscard]] const std::string& close_reason() const noexcept { return close_reason_; }

    // Queues a command; `done` runs exactly once (a connection that closes
    // first answers every queued command with errc::disconnected).
    void send(const std::vector<std::string>& args, reply_handler done);
    // SUBSCRIBE channel; messages go to `on_message`. A subscribed
    // connection takes no other commands (Redis' rule).
    void subscribe(const std::string& channel, message_handler on_message);
    // Frees the context now (queued commands fail). Idempotent.
    void close(std::string reason);

    // For tests and metrics: commands sent and not yet answered.
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }

  private:
    struct context_deleter {
        void operator()(redisAsyncContext* ctx) const noexcept;
    };
    explicit redis_connection(strand ex, redis_endpoint endpoint);

    // hiredis ev hooks and callbacks (privdata / ac->data is `this`).
    static void add_read(void* self);
    static void del_read(void* self);
    static void add_write(void* self);
    static void del_write(void* self);
    static void cleanup(void* self);
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    static void on_reply(redisAsyncContext* ac, void* r, void* privdata);
    static void on_message(redisAsyncContext* ac, void* r, void* privdata);

    // Waits for the socket to become readable (writable) for hiredis.
    void watch(bool read);
    void post_service(bool read);
    [[nodiscard]] bool ready_now(bool read) const;
    // Readiness: lets hiredis read (or write) until the socket has no more
    // for it (Asio's epoll is edge-triggered; hiredis does one read() a call).
    void service(bool read);
    // Records hiredis' error before the context goes away.
    void note_error();

    strand ex_;
    redis_endpoint endpoint_;
    // Owned; released without freeing when hiredis frees it itself (the
    // cleanup hook runs inside every redisAsyncFree).
    std::unique_ptr<redisAsyncContext, context_deleter> ctx_;
    asio::posix::stream_descriptor fd_;
    bool want_read_ = false, want_write_ = false;
    bool read_armed_ = false, write_armed_ = false;
    bool read_posted_ = false, write_posted_ = false;
    bool connected_ = false;
    int connect_status_ = 0;
    core::wake_signal connect_signal_;
    std::function<void()> on_closed_;
    message_handler on_message_;
    std::string close_reason_;
    std::size_t in_flight_ = 0;
};

}  // namespace tunnel::cluster
