#include "sftp/client.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tunnel::sftp {

namespace {

constexpr std::uint32_t sftp_version = 3;
// Replies buffered on the channel before libssh is told to hold back; large
// enough for 64 read replies in flight.
constexpr std::size_t channel_buffer = 32u << 20;
// drain() reads in calls of this size so libssh's receive window follows (§4).
constexpr std::size_t channel_read_chunk = 8u << 20;

}  // namespace

core::error status_error(const status_reply& s, std::string_view what) {
    auto code = core::errc::io_error;
    if (s.code == status_code::no_such_file) code = core::errc::not_found;
    if (s.code == status_code::permission_denied) code = core::errc::permission_denied;
    if (s.code == status_code::op_unsupported) code = core::errc::invalid_argument;
    std::string detail = s.message.empty() ? std::string(to_string(s.code)) : s.message;
    // OpenSSH says "Failure" for ENOSPC, EEXIST, ENOTEMPTY alike: keep its word.
    return {code, fmt::format("{}: {}", what, detail)};
}

client::client(std::shared_ptr<ssh::session> s, std::unique_ptr<byte_pipe> pipe,
               std::string destination, client_options options)
    : session_(std::move(s)),
      pipe_(std::move(pipe)),
      options_(options),
      destination_(std::move(destination)) {}

client::~client() {
    pipe_->close();
}

client_options client::checked(client_options options) {
    options.chunk_size = std::clamp<std::size_t>(options.chunk_size, 1024, max_chunk);
    options.max_inflight = std::max<std::size_t>(options.max_inflight, 1);
    return options;
}

asio::awaitable<core::result<std::unique_ptr<client>>> client::open_on(
    std::unique_ptr<byte_pipe> pipe, std::string destination, client_options options) {
    std::unique_ptr<client> c(
        new client(nullptr, std::move(pipe), std::move(destination), checked(options)));
    if (auto h = co_await c->handshake(); !h) co_return tl::unexpected(h.error());
    co_return c;
}

asio::awaitable<core::result<std::unique_ptr<client>>> client::open(std::shared_ptr<ssh::session> s,
                                                                    client_options options) {
    options = checked(options);
    const auto deadline = ssh::clock_type::now() + options.timeout;
    auto ch = co_await ssh::channel::open_session(s, deadline);
    if (!ch) co_return tl::unexpected(ch.error());
    if (auto r = co_await ch->request_subsystem("sftp", deadline); !r) {
        auto e = r.error();
        e.message += " (is the sftp subsystem enabled in sshd_config?)";
        co_return tl::unexpected(e);
    }
    ch->state().buffer_cap = channel_buffer;
    ch->state().read_chunk = channel_read_chunk;
    auto destination = s->options().destination();
    auto pipe = std::make_unique<channel_pipe>(s, std::move(*ch));
    std::unique_ptr<client> c(
        new client(std::move(s), std::move(pipe), std::move(destination), options));
    if (auto h = co_await c->handshake(); !h) co_return tl::unexpected(h.error());
    co_return c;
}

asio::awaitable<core::result<void>> client::handshake() {
    send(packet_writer::init(sftp_version).finish());
    const auto sent = ssh::clock_type::now();
    const auto until = deadline();
    std::optional<reply> version;
    while (!version) {
        if (auto it = replies_.find(0); it != replies_.end() && it->second.type == fxp::version) {
            version = std::move(it->second);
            replies_.erase(it);
            break;
        }
        if (auto s = co_await step(until); !s) co_return s;
    }
    rtt_ = std::chrono::duration_cast<std::chrono::microseconds>(ssh::clock_type::now() - sent);
    auto v = parse_version(version->body);
    if (!v) co_return tl::unexpected(v.error());
    for (const auto& [name, data] : v->extensions) {
        if (name == "posix-rename@openssh.com") ext_.posix_rename = true;
        if (name == "fsync@openssh.com") ext_.fsync = true;
        if (name == "statvfs@openssh.com") ext_.statvfs = true;
        if (name == "hardlink@openssh.com") ext_.hardlink = true;
        if (name == "limits@openssh.com") ext_.limits = true;
    }
    if (ext_.limits) {
        auto id = next_id();
        const auto asked = ssh::clock_type::now();
        auto r = co_await call(packet_writer(fxp::extended, id).str("limits@openssh.com").finish(),
                               id, "limits");
        if (!r) co_return tl::unexpected(r.error());
        // The server is running by now: a better round-trip estimate than INIT's.
        rtt_ =
            std::chrono::duration_cast<std::chrono::microseconds>(ssh::clock_type::now() - asked);
        if (r->type == fxp::extended_reply) {
            auto l = parse_limits(r->body);
            if (!l) co_return tl::unexpected(l.error());
            std::uint64_t chunk = options_.chunk_size;
            if (l->max_read_length) chunk = std::min(chunk, l->max_read_length);
            if (l->max_write_length) chunk = std::min(chunk, l->max_write_length);
            if (l->max_packet_length > 1024)
                chunk = std::min<std::uint64_t>(chunk, l->max_packet_length - 1024);
            options_.chunk_size = static_cast<std::size_t>(std::max<std::uint64_t>(chunk, 1024));
        }
    }
    spdlog::debug("sftp on {}: chunk {} bytes, {} in flight ({} for reads; round trip {} us)",
                  destination_, options_.chunk_size, options_.max_inflight, read_inflight(),
                  rtt_.count());
    co_return core::result<void>{};
}

void client::send(std::string packet) {
    out_packet o{std::make_unique_for_overwrite<char[]>(packet.size()), packet.size()};
    std::memcpy(o.bytes.get(), packet.data(), packet.size());
    send(std::move(o));
}

void client::send(out_packet packet) {
    queued_ += packet.size;
    outq_.push_back(std::move(packet));
}

asio::awaitable<core::result<void>> client::step(ssh::time_point until) {
    if (broken_) co_return tl::unexpected(broken_error_);
    bool progressed = false;
    // 1. Send what the window allows.
    while (!outq_.empty()) {
        const auto& front = outq_.front();
        auto n = pipe_->write_some(
            std::string_view(front.bytes.get() + out_off_, front.size - out_off_));
        if (!n) {
            broken_ = true;
            broken_error_ = n.error();
            co_return tl::unexpected(n.error());
        }
        if (*n == 0) break;
        out_off_ += *n;
        queued_ -= *n;
        progressed = true;
        if (out_off_ == outq_.front().size) {
            outq_.pop_front();
            out_off_ = 0;
        }
    }
    // Sending stopped on an exhausted window (not on a key re-exchange, where
    // ssh_channel_write takes nothing while the window is open).
    const bool window_was_closed = !outq_.empty() && pipe_->write_blocked();
    // 2. Take what arrived.
    pipe_->drain();
    // drain() runs libssh's packet loop, which may just have processed the
    // peer's WINDOW_ADJUST (libssh has no callback for it). Then send now: the
    // adjust is already consumed, so waiting for the socket would sleep until
    // the deadline, because a peer that gave its whole window back (dropbear:
    // 24 KiB) sends nothing more until our data arrives.
    if (window_was_closed && !pipe_->write_blocked()) progressed = true;
    auto& in = pipe_->inbox();
    std::size_t off = 0;
    for (;;) {
        auto f = next_frame(std::string_view(in).substr(off));
        if (!f) {
            broken_ = true;
            broken_error_ = {core::errc::protocol_error,
                             fmt::format("{}: {}", destination_, f.error().message)};
            co_return tl::unexpected(broken_error_);
        }
        if (!*f) break;
        auto& fr = **f;
        if (fr.type == fxp::data && data_sink_ && data_sink_(fr.id, fr.body)) {
            off += fr.size;
            progressed = true;
            continue;
        }
        // VERSION carries the protocol version where replies carry an id.
        replies_[fr.type == fxp::version ? 0 : fr.id] = reply{fr.type, std::string(fr.body)};
        off += fr.size;
        progressed = true;
    }
    if (off > 0) in.erase(0, off);
    if (progressed) co_return core::result<void>{};
    if (pipe_->ended()) {
        broken_ = true;
        broken_error_ = {core::errc::disconnected, pipe_->ended_message(destination_)};
        co_return tl::unexpected(broken_error_);
    }
    // Blocked on the peer's window: another channel's libssh call may process
    // our window adjust (no callback, no notify), so look again soon.
    // (A socket pipe waits for writability itself: no need to look again.)
    const bool window_blocked = session_ && !outq_.empty() && pipe_->write_blocked();
    const auto wake = window_blocked
                          ? std::min(until, ssh::clock_type::now() + std::chrono::milliseconds(20))
                          : until;
    auto w = co_await pipe_->wait(wake);
    if (!w && w.error().code == core::errc::timeout && wake < until) co_return core::result<void>{};
    if (!w) {
        if (w.error().code == core::errc::timeout)
            co_return core::fail(core::errc::timeout,
                                 fmt::format("SFTP server on {} did not answer within {} ms",
                                             destination_, options_.timeout.count()));
        broken_ = true;
        broken_error_ = w.error();
        co_return w;
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<client::reply>> client::call(std::string packet, std::uint32_t id,
                                                          std::string_view what) {
    send(std::move(packet));
    const auto until = deadline();
    for (;;) {
        if (auto it = replies_.find(id); it != replies_.end()) {
            reply r = std::move(it->second);
            replies_.erase(it);
            co_return r;
        }
        if (auto s = co_await step(until); !s) {
            auto e = s.error();
            e.message = fmt::format("{}: {}", what, e.message);
            co_return tl::unexpected(e);
        }
    }
}

core::error client::fail_status(const reply& r, std::string_view what) const {
    if (r.type != fxp::status)
        return {core::errc::protocol_error,
                fmt::format("{}: unexpected SFTP reply type {}", what, int(r.type))};
    auto s = parse_status(r.body);
    if (!s) return {core::errc::protocol_error, fmt::format("{}: {}", what, s.error().message)};
    return status_error(*s, what);
}

asio::awaitable<core::result<void>> client::call_status(std::string packet, std::uint32_t id,
                                                        std::string what) {
    auto r = co_await call(std::move(packet), id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type == fxp::status) {
        auto s = parse_status(r->body);
        if (s && s->code == status_code::ok) co_return core::result<void>{};
    }
    co_return tl::unexpected(fail_status(*r, what));
}

asio::awaitable<core::result<file_attrs>> client::call_attrs(fxp type, std::string path,
                                                             std::string what) {
    auto id = next_id();
    auto r = co_await call(packet_writer(type, id).str(path).finish(), id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type == fxp::attrs) co_return parse_attrs(r->body);
    co_return tl::unexpected(fail_status(*r, what));
}

asio::awaitable<core::result<file_attrs>> client::stat(std::string path) {
    co_return co_await call_attrs(fxp::stat, path, fmt::format("stat {}", path));
}

asio::awaitable<core::result<file_attrs>> client::lstat(std::string path) {
    co_return co_await call_attrs(fxp::lstat, path, fmt::format("lstat {}", path));
}

asio::awaitable<core::result<file_attrs>> client::fstat(std::string handle) {
    co_return co_await call_attrs(fxp::fstat, handle, "fstat");
}

asio::awaitable<core::result<std::string>> client::call_one_name(fxp type, std::string path,
                                                                 std::string what) {
    auto id = next_id();
    auto r = co_await call(packet_writer(type, id).str(path).finish(), id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type != fxp::name) co_return tl::unexpected(fail_status(*r, what));
    auto n = parse_name(r->body);
    if (!n) co_return tl::unexpected(n.error());
    if (n->size() != 1)
        co_return core::fail(core::errc::protocol_error, what + ": expected one name");
    co_return std::move(n->front().filename);
}

asio::awaitable<core::result<std::string>> client::realpath(std::string path) {
    std::string what = fmt::format("realpath {}", path);
    co_return co_await call_one_name(fxp::realpath, std::move(path), std::move(what));
}

asio::awaitable<core::result<std::string>> client::readlink(std::string path) {
    std::string what = fmt::format("readlink {}", path);
    co_return co_await call_one_name(fxp::readlink, std::move(path), std::move(what));
}

asio::awaitable<core::result<std::vector<name_entry>>> client::list(std::string path) {
    std::string what = fmt::format("list {}", path);
    auto id = next_id();
    auto r = co_await call(packet_writer(fxp::opendir, id).str(path).finish(), id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type != fxp::handle) co_return tl::unexpected(fail_status(*r, what));
    auto handle = parse_handle(r->body);
    if (!handle) co_return tl::unexpected(handle.error());
    std::vector<name_entry> out;
    for (;;) {
        id = next_id();
        r = co_await call(packet_writer(fxp::readdir, id).str(*handle).finish(), id, what);
        if (!r) co_return tl::unexpected(r.error());
        if (r->type == fxp::status) {
            auto s = parse_status(r->body);
            if (s && s->code == status_code::eof) break;
            co_return tl::unexpected(fail_status(*r, what));
        }
        if (r->type != fxp::name) co_return tl::unexpected(fail_status(*r, what));
        auto names = parse_name(r->body);
        if (!names) co_return tl::unexpected(names.error());
        for (auto& n : *names)
            if (n.filename != "." && n.filename != "..") out.push_back(std::move(n));
    }
    (void)co_await close(*handle);
    co_return out;
}

asio::awaitable<core::result<void>> client::mkdir(std::string path, std::uint32_t mode) {
    auto id = next_id();
    file_attrs a;
    a.permissions = mode;
    co_return co_await call_status(packet_writer(fxp::mkdir, id).str(path).attrs(a).finish(), id,
                                   fmt::format("mkdir {}", path));
}

asio::awaitable<core::result<void>> client::rmdir(std::string path) {
    auto id = next_id();
    co_return co_await call_status(packet_writer(fxp::rmdir, id).str(path).finish(), id,
                                   fmt::format("rmdir {}", path));
}

asio::awaitable<core::result<void>> client::remove(std::string path) {
    auto id = next_id();
    co_return co_await call_status(packet_writer(fxp::remove, id).str(path).finish(), id,
                                   fmt::format("remove {}", path));
}

asio::awaitable<core::result<void>> client::setstat(std::string path, file_attrs attrs) {
    auto id = next_id();
    co_return co_await call_status(packet_writer(fxp::setstat, id).str(path).attrs(attrs).finish(),
                                   id, fmt::format("setstat {}", path));
}

asio::awaitable<core::result<void>> client::fsetstat(std::string handle, file_attrs attrs) {
    auto id = next_id();
    co_return co_await call_status(
        packet_writer(fxp::fsetstat, id).str(handle).attrs(attrs).finish(), id, "fsetstat");
}

asio::awaitable<core::result<void>> client::symlink(std::string target, std::string link_path) {
    auto id = next_id();
    co_return co_await call_status(
        packet_writer(fxp::symlink, id).str(target).str(link_path).finish(), id,
        fmt::format("symlink {} -> {}", link_path, target));
}

asio::awaitable<core::result<void>> client::rename(std::string from, std::string to) {
    auto id = next_id();
    std::string what = fmt::format("rename {} to {}", from, to);
    if (ext_.posix_rename)
        co_return co_await call_status(packet_writer(fxp::extended, id)
                                           .str("posix-rename@openssh.com")
                                           .str(from)
                                           .str(to)
                                           .finish(),
                                       id, what);
    auto r =
        co_await call_status(packet_writer(fxp::rename, id).str(from).str(to).finish(), id, what);
    if (r) co_return r;
    // SFTP v3 rename refuses an existing target: remove it and try again.
    if (auto st = co_await lstat(to); st && !st->is_dir()) {
        if (auto rm = co_await remove(to); !rm) co_return rm;
        id = next_id();
        co_return co_await call_status(packet_writer(fxp::rename, id).str(from).str(to).finish(),
                                       id, what);
    }
    co_return r;
}

asio::awaitable<core::result<void>> client::hardlink(std::string from, std::string to) {
    if (!ext_.hardlink)
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("{} does not offer hardlink@openssh.com", destination_));
    auto id = next_id();
    co_return co_await call_status(
        packet_writer(fxp::extended, id).str("hardlink@openssh.com").str(from).str(to).finish(), id,
        fmt::format("hardlink {} to {}", from, to));
}

asio::awaitable<core::result<fs_stats>> client::statvfs(std::string path) {
    std::string what = fmt::format("statvfs {}", path);
    if (!ext_.statvfs)
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("{} does not offer statvfs@openssh.com", destination_));
    auto id = next_id();
    auto r = co_await call(
        packet_writer(fxp::extended, id).str("statvfs@openssh.com").str(path).finish(), id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type != fxp::extended_reply) co_return tl::unexpected(fail_status(*r, what));
    co_return parse_statvfs(r->body);
}

asio::awaitable<core::result<std::string>> client::open_file(std::string path, std::uint32_t flags,
                                                             file_attrs attrs) {
    auto id = next_id();
    std::string what = fmt::format("open {}", path);
    auto r = co_await call(packet_writer(fxp::open, id).str(path).u32(flags).attrs(attrs).finish(),
                           id, what);
    if (!r) co_return tl::unexpected(r.error());
    if (r->type != fxp::handle) co_return tl::unexpected(fail_status(*r, what));
    co_return parse_handle(r->body);
}

asio::awaitable<core::result<void>> client::close(std::string handle) {
    auto id = next_id();
    co_return co_await call_status(packet_writer(fxp::close, id).str(handle).finish(), id, "close");
}

asio::awaitable<core::result<void>> client::fsync(std::string handle) {
    if (!ext_.fsync) co_return core::result<void>{};
    auto id = next_id();
    co_return co_await call_status(
        packet_writer(fxp::extended, id).str("fsync@openssh.com").str(handle).finish(), id,
        "fsync");
}

}  // namespace tunnel::sftp
