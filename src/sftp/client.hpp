// A pipelined SFTP v3 client on an `sftp` subsystem channel (ARCHITECTURE §4:
// libssh 0.10's own SFTP cannot pipeline writes and drops read replies above
// 261,120 bytes). Requests carry ids; bulk transfers keep up to
// `max_inflight` requests outstanding, in chunks sized by the server's
// limits@openssh.com (never above 256 KiB), and the channel is read in large
// calls so libssh grows its receive window.
//
// Like its session, a client lives on one executor; several clients (one per
// concurrent file) may share a session. The bytes go over a byte_pipe: the
// client's own channel, or the link manager's relay (byte_pipe.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "sftp/byte_pipe.hpp"
#include "sftp/packet.hpp"
#include "sftp/read_depth.hpp"
#include "ssh/channel.hpp"
#include "ssh/session.hpp"

namespace tunnel::sftp {

struct client_options {
    // Writes in flight; for reads, the most in flight (see read_depth()).
    std::size_t max_inflight = 64;
    std::size_t chunk_size =
        255 * 1024;  // lowered to the server's limits@openssh.com; never above 256 KiB
    // A request (or, in bulk transfers, progress) must arrive within this.
    std::chrono::milliseconds timeout{60'000};
};

inline constexpr std::size_t max_chunk = 256 * 1024;

struct extensions {
    bool posix_rename = false;  // posix-rename@openssh.com
    bool fsync = false;         // fsync@openssh.com
    bool statvfs = false;       // statvfs@openssh.com
    bool hardlink = false;      // hardlink@openssh.com
    bool limits = false;        // limits@openssh.com
};

// Called with bytes newly confirmed written (upload) or received (download).
using progress_fn = std::function<void(std::uint64_t)>;

class client {
  public:
    static asio::awaitable<core::result<std::unique_ptr<client>>> open(
        std::shared_ptr<ssh::session> s, client_options options = {});
    // A client over a pipe that already reaches an SFTP server (the link
    // manager's relay); `destination` names the host in messages.
    static asio::awaitable<core::result<std::unique_ptr<client>>> open_on(
        std::unique_ptr<byte_pipe> pipe, std::string destination, client_options options = {});
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    ~client();

    asio::awaitable<core::result<file_attrs>> stat(std::string path);
    asio::awaitable<core::result<file_attrs>> lstat(std::string path);
    asio::awaitable<core::result<std::string>> realpath(std::string path);
    asio::awaitable<core::result<std::string>> readlink(std::string path);
    asio::awaitable<core::result<std::vector<name_entry>>> list(
        std::string path);  // without . and ..
    asio::awaitable<core::result<void>> mkdir(std::string path, std::uint32_t mode);
    asio::awaitable<core::result<void>> rmdir(std::string path);
    asio::awaitable<core::result<void>> remove(std::string path);
    asio::awaitable<core::result<void>> setstat(std::string path, file_attrs attrs);
    // Links `link_path` to `target` (OpenSSH's argument order on the wire).
    asio::awaitable<core::result<void>> symlink(std::string target, std::string link_path);
    // Replaces `to` atomically with posix-rename@openssh.com when offered;
    // otherwise removes `to` first (not atomic) when it exists.
    asio::awaitable<core::result<void>> rename(std::string from, std::string to);
    asio::awaitable<core::result<void>> hardlink(std::string from, std::string to);
    asio::awaitable<core::result<fs_stats>> statvfs(std::string path);

    asio::awaitable<core::result<std::string>> open_file(std::string path, std::uint32_t flags,
                                                         file_attrs attrs = {});
    asio::awaitable<core::result<void>> close(std::string handle);
    asio::awaitable<core::result<file_attrs>> fstat(std::string handle);
    asio::awaitable<core::result<void>> fsetstat(std::string handle, file_attrs attrs);
    // fsync@openssh.com; a no-op success when the server does not offer it.
    asio::awaitable<core::result<void>> fsync(std::string handle);

    // Writes [offset, offset+length) of local `fd` to the remote handle at the same offsets.
    asio::awaitable<core::result<void>> upload(int fd, std::string handle, std::uint64_t offset,
                                               std::uint64_t length, progress_fn progress = {});
    // Reads [offset, offset+length) of the remote handle into local `fd` at the
    // same offsets. Returns the bytes read: fewer when the file ended early.
    // `sparse`: chunks of zeros are not written (the caller sets the final
    // size with ftruncate), so holes stay holes.
    asio::awaitable<core::result<std::uint64_t>> download(std::string handle, int fd,
                                                          std::uint64_t offset,
                                                          std::uint64_t length,
                                                          progress_fn progress = {},
                                                          bool sparse = false);
    // Feeds [offset, offset+length) of the remote handle to `sink` in order.
    asio::awaitable<core::result<std::uint64_t>> read_stream(
        std::string handle, std::uint64_t offset, std::uint64_t length,
        std::function<void(std::string_view)> sink);

    [[nodiscard]] const extensions& ext() const noexcept { return ext_; }
    // Round-trip time of the SFTP handshake: a hint for how far windows limit us.
    [[nodiscard]] std::chrono::microseconds handshake_rtt() const noexcept { return rtt_; }
    [[nodiscard]] std::size_t chunk_size() const noexcept { return options_.chunk_size; }
    // Read requests bulk reads keep in flight: read_depth() of this link.
    [[nodiscard]] std::size_t read_inflight() const noexcept {
        return read_depth(rtt_, options_.chunk_size, options_.max_inflight);
    }
    // The most read requests that were in flight at once so far.
    [[nodiscard]] std::size_t peak_reads_in_flight() const noexcept { return peak_reads_; }
    [[nodiscard]] const std::string& destination() const noexcept { return destination_; }
    // Null for a client over the link manager's relay.
    [[nodiscard]] const std::shared_ptr<ssh::session>& session() const noexcept { return session_; }

  private:
    struct reply {
        fxp type{};
        std::string body;
    };

    client(std::shared_ptr<ssh::session> s, std::unique_ptr<byte_pipe> pipe,
           std::string destination, client_options options);
    static client_options checked(client_options options);

    asio::awaitable<core::result<void>> handshake();
    std::uint32_t next_id() noexcept { return ++last_id_; }
    void send(std::string packet);
    // Moves bytes both ways once; waits for the socket only when nothing moved.
    asio::awaitable<core::result<void>> step(ssh::time_point deadline);
    asio::awaitable<core::result<reply>> call(std::string packet, std::uint32_t id,
                                              std::string_view what);
    asio::awaitable<core::result<void>> call_status(std::string packet, std::uint32_t id,
                                                    std::string what);
    asio::awaitable<core::result<file_attrs>> call_attrs(fxp type, std::string path,
                                                         std::string what);
    // A request on `path` whose answer is exactly one name (realpath, readlink).
    asio::awaitable<core::result<std::string>> call_one_name(fxp type, std::string path,
                                                             std::string what);
    asio::awaitable<core::result<std::uint64_t>> read_pipelined(
        std::string handle, std::uint64_t offset, std::uint64_t length,
        std::function<core::result<void>(std::uint64_t offset, std::string_view data)> on_data,
        bool in_order);
    [[nodiscard]] ssh::time_point deadline() const {
        return ssh::clock_type::now() + options_.timeout;
    }
    core::error fail_status(const reply& r, std::string_view what) const;

    std::shared_ptr<ssh::session> session_;
    std::unique_ptr<byte_pipe> pipe_;
    client_options options_;
    extensions ext_;
    std::string destination_;
    std::chrono::microseconds rtt_{0};
    std::uint32_t last_id_ = 0;
    std::size_t peak_reads_ = 0;
    struct out_packet {
        std::unique_ptr<char[]> bytes;  // not zero-filled: file data is read straight into it
        std::size_t size = 0;
    };
    void send(out_packet packet);
    std::deque<out_packet> outq_;  // whole packets; the front one is sent from out_off_
    std::size_t out_off_ = 0;
    std::size_t queued_ = 0;  // bytes in outq_ not yet sent
    std::unordered_map<std::uint32_t, reply> replies_;
    // Bulk downloads take DATA replies straight from the channel buffer
    // (no copy into replies_); returns false for replies it does not own.
    std::function<bool(std::uint32_t id, std::string_view body)> data_sink_;
    bool broken_ = false;
    core::error broken_error_{core::errc::disconnected, ""};
};

// Maps an SFTP status to our error conditions ("what: message").
[[nodiscard]] core::error status_error(const status_reply& s, std::string_view what);

}  // namespace tunnel::sftp
