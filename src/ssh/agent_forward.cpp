#include "ssh/agent_forward.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "ssh/channel.hpp"
#include "ssh/channel_pump.hpp"
#include "ssh/session.hpp"

namespace tunnel::ssh {

namespace {

// Agent messages are at most 256 KiB (OpenSSH's AGENT_MAX_LEN); a reply
// is taken whole before the next request.
constexpr pump_limits agent_pump_limits{512 << 10, 64 << 10};

// A connected, non-blocking Unix socket to `path`, or why not.
core::result<int> connect_agent(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("agent socket path {} is too long", path));
    std::memcpy(addr.sun_path, path.data(), path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return core::fail(core::errc::resource_exhausted,
                          fmt::format("cannot create a socket: {}", std::strerror(errno)));
    // A local connect completes at once (or fails: ENOENT, ECONNREFUSED,
    // EAGAIN when the agent's backlog is full): it never blocks the session.
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        ::close(fd);
        return core::fail(
            core::errc::connection_failed,
            fmt::format("cannot connect to the agent at {}: {}", path, std::strerror(e)));
    }
    return fd;
}

// Counts an agent channel as active while its pump runs.
class agent_observer : public pump_observer {
  public:
    explicit agent_observer(std::shared_ptr<std::size_t> active) : active_(std::move(active)) {
        ++*active_;
    }
    ~agent_observer() override { --*active_; }
    void on_channel_error(std::string_view why) override {
        spdlog::debug("agent forwarding: {}", why);
    }

  private:
    std::shared_ptr<std::size_t> active_;
};

std::atomic<bool> warned_no_agent{false};

}  // namespace

agent_grant& agent_grant::operator=(agent_grant&& o) noexcept {
    if (this != &o) {
        release();
        session_ = std::exchange(o.session_, {});
    }
    return *this;
}

agent_grant::~agent_grant() {
    release();
}

void agent_grant::release() noexcept {
    auto s = std::exchange(session_, {}).lock();
    if (s && s->native()) s->agent().release();
}

asio::awaitable<core::result<agent_grant>> request_agent_forwarding(
    channel& ch, std::optional<std::string> spec, std::chrono::steady_clock::time_point deadline) {
    session& s = ch.owner();
    if (!spec) co_return agent_grant{};
    auto path = agent_socket_to_forward(*spec);
    if (!path) {
        // Once per process: `tunnel run` would say it for every host.
        if (!warned_no_agent.exchange(true))
            spdlog::warn("{}; continuing without agent forwarding", path.error().message);
        else
            spdlog::debug("{}: {}", s.options().destination(), path.error().message);
        co_return agent_grant{};
    }
    // Accept the agent channels before asking: the server may open one as
    // soon as the command starts.
    auto grant = s.agent().grant(std::move(*path));
    auto sent = co_await ch.request_auth_agent(deadline);
    if (!sent) co_return tl::unexpected(sent.error());
    spdlog::debug("{}: agent forwarding requested", s.options().destination());
    co_return std::move(grant);
}

agent_forwarder::agent_forwarder(session& owner) : owner_(owner) {
    callbacks_.userdata = this;
    callbacks_.channel_open_request_auth_agent_function = &agent_forwarder::on_open;
    ssh_callbacks_init(&callbacks_);
    ssh_set_callbacks(owner_.native(), &callbacks_);
}

agent_forwarder::~agent_forwarder() {
    release_pending();
}

agent_grant agent_forwarder::grant(std::string socket_path) {
    socket_path_ = std::move(socket_path);
    ++grants_;
    ever_enabled_ = true;
    return agent_grant(owner_.weak_from_this());
}

void agent_forwarder::release() noexcept {
    if (grants_ == 0 || --grants_ > 0) return;
    // The commands that forwarded the agent have ended: so does its use.
    for (auto& w : pumps_)
        if (auto p = w.lock()) p->stop();
    pumps_.clear();
}

void agent_forwarder::release_pending() noexcept {
    for (auto& p : pending_) {
        if (p.fd >= 0) ::close(p.fd);
        p.channel.reset();
    }
    pending_.clear();
}

ssh_channel agent_forwarder::on_open(ssh_session s, void* self) {
    return static_cast<agent_forwarder*>(self)->open_channel(s);
}

// Runs inside libssh's packet loop: records, never waits. nullptr makes
// libssh refuse the open.
ssh_channel agent_forwarder::open_channel(ssh_session s) {
    owner_.note_activity();
    const auto& dest = owner_.options().destination();
    if (grants_ == 0 && ever_enabled_) {
        ++refused_;
        spdlog::debug("{}: agent channel refused: the command that forwarded the agent has ended",
                      dest);
        return nullptr;
    }
    if (grants_ == 0) {
        ++refused_;
        if (!warned_unrequested_) {
            warned_unrequested_ = true;
            spdlog::warn(
                "{} tried to open an agent channel, but agent forwarding was not asked for on "
                "this connection: refused (a server that does this may be trying to use your "
                "keys)",
                dest);
        }
        return nullptr;
    }
    if (pending_.size() + *active_ >= max_channels) {
        ++refused_;
        if (!warned_cap_) {
            warned_cap_ = true;
            spdlog::warn("{}: more than {} agent channels at once; refusing the rest", dest,
                         max_channels);
        }
        return nullptr;
    }
    auto fd = connect_agent(socket_path_);
    if (!fd) {
        ++refused_;
        if (!warned_agent_) {
            warned_agent_ = true;
            spdlog::warn("agent forwarding to {}: {}; refusing the server's agent requests", dest,
                         fd.error().message);
        } else {
            spdlog::debug("agent forwarding to {}: {}", dest, fd.error().message);
        }
        return nullptr;
    }
    channel_handle ch(ssh_channel_new(s));
    if (!ch) {
        ::close(*fd);
        ++refused_;
        return nullptr;
    }
    ssh_channel raw = ch.get();
    pending_.push_back({std::move(ch), *fd});
    if (!start_posted_) {
        start_posted_ = true;
        // Pumps start outside the packet loop (libssh confirms the open after
        // this returns); the session may be gone by then.
        asio::post(owner_.executor(), [weak = owner_.weak_from_this()] {
            if (auto self = weak.lock(); self && self->native()) self->agent().start_pending();
        });
    }
    return raw;
}

void agent_forwarder::start_pending() {
    start_posted_ = false;
    auto items = std::move(pending_);
    pending_.clear();
    auto s = owner_.shared_from_this();
    std::erase_if(pumps_, [](const auto& w) { return w.expired(); });
    for (auto& p : items) {
        channel c = channel::adopt(s, std::move(p.channel));
        if (grants_ == 0) {  // released while this waited
            ::close(p.fd);
            c.close();
            continue;
        }
        stream_socket socket(s->executor());
        boost::system::error_code ec;
        socket.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), p.fd, ec);
        if (ec) {
            ::close(p.fd);
            c.close();
            continue;
        }
        ++served_;
        spdlog::debug("{}: agent channel {} opened", owner_.options().destination(), served_);
        pumps_.push_back(start_channel_pump(std::move(c), std::move(socket),
                                            std::make_shared<agent_observer>(active_), {},
                                            agent_pump_limits, "agent forwarding"));
    }
}

}  // namespace tunnel::ssh
