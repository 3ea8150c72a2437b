// What an SFTP client speaks over: the `sftp` subsystem channel of a session
// of its own (channel_pipe), or a Unix socket to the link manager, which
// relays the bytes to such a channel on its warm session (socket_pipe; see
// docs/link.md, "Pooled sessions"). Both are driven the same way: write what
// fits without blocking, drain what arrived, wait when nothing moved.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/channel.hpp"
#include "ssh/session.hpp"

namespace tunnel::sftp {

class byte_pipe {
  public:
    virtual ~byte_pipe() = default;
    // Takes what it can without blocking; the bytes taken (0: try again later).
    [[nodiscard]] virtual core::result<std::size_t> write_some(std::string_view data) = 0;
    // Writing waits for the peer (an SSH window at 0, a full socket).
    [[nodiscard]] virtual bool write_blocked() const = 0;
    // Moves bytes that arrived into inbox().
    virtual void drain() = 0;
    [[nodiscard]] virtual std::string& inbox() = 0;
    // The peer closed or sent EOF: nothing more will arrive.
    [[nodiscard]] virtual bool ended() = 0;
    // What to tell the user once ended(): who went away.
    [[nodiscard]] virtual std::string ended_message(std::string_view destination) const = 0;
    // Waits until something may have moved, or `until` (errc::timeout).
    virtual asio::awaitable<core::result<void>> wait(ssh::time_point until) = 0;
    virtual void close() = 0;
};

// The subsystem channel on a session of this process.
class channel_pipe final : public byte_pipe {
  public:
    channel_pipe(std::shared_ptr<ssh::session> s, ssh::channel ch)
        : session_(std::move(s)), channel_(std::move(ch)) {}
    core::result<std::size_t> write_some(std::string_view data) override {
        return channel_.write_some(data);
    }
    bool write_blocked() const override { return channel_.window() == 0; }
    void drain() override { channel_.drain(); }
    std::string& inbox() override { return channel_.state().out; }
    bool ended() override { return channel_.state().closed || channel_.state().eof; }
    std::string ended_message(std::string_view destination) const override;
    asio::awaitable<core::result<void>> wait(ssh::time_point until) override {
        return session_->wait(until);
    }
    void close() override { channel_.close(); }

    [[nodiscard]] ssh::channel& channel() noexcept { return channel_; }

  private:
    std::shared_ptr<ssh::session> session_;
    ssh::channel channel_;
};

// A connected stream socket (the link manager's control connection after it
// said {"ok": true}) carrying the SFTP bytes as they are.
class socket_pipe final : public byte_pipe {
  public:
    // `already`: bytes read off the socket before (they come first).
    explicit socket_pipe(asio::local::stream_protocol::socket s, std::string already = {});
    ~socket_pipe() override;
    core::result<std::size_t> write_some(std::string_view data) override;
    bool write_blocked() const override { return write_blocked_; }
    void drain() override;
    std::string& inbox() override { return inbox_; }
    bool ended() override { return ended_; }
    std::string ended_message(std::string_view destination) const override;
    asio::awaitable<core::result<void>> wait(ssh::time_point until) override;
    void close() override;

  private:
    std::shared_ptr<asio::local::stream_protocol::socket> socket_;
    std::string inbox_;
    std::unique_ptr<char[]> scratch_;  // recv() buffer
    bool write_blocked_ = false;
    bool ended_ = false;
    std::optional<core::error> failed_;
};

}  // namespace tunnel::sftp
