#include "link/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "core/unique_fd.hpp"
#include "link/control_request.hpp"
#include "link/exec_service.hpp"
#include "link/sftp_service.hpp"

namespace tunnel::link {

namespace {

// Counts a control connection that became an exec's or an SFTP session's stream.
struct execs_counted {
    std::size_t& n;
    explicit execs_counted(std::size_t& count) : n(count) { ++n; }
    ~execs_counted() { --n; }
};

using local = asio::local::stream_protocol;

// Is something answering on this Unix socket path?
bool answers(const std::string& path) {
    core::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

struct control_server::connection {
    explicit connection(local::socket s) : socket(std::move(s)), wake(socket.get_executor()) {}
    local::socket socket;
    asio::steady_timer wake;  // the events writer's
    std::deque<std::string> queue;
    std::uint64_t subscription = 0;
    bool closed = false;
    bool overflow = false;

    void close() {
        closed = true;
        boost::system::error_code ignored;
        socket.shutdown(local::socket::shutdown_both, ignored);
        socket.close(ignored);
        wake.cancel();
    }
};

core::result<std::string> default_control_path() {
    const char* dir = std::getenv("XDG_RUNTIME_DIR");
    if (!dir || !*dir || dir[0] != '/')
        return core::fail(core::errc::invalid_argument,
                          "XDG_RUNTIME_DIR is not set: give the control socket with --control "
                          "PATH (or control.socket in the links file)");
    return std::string(dir) + "/tunnel/control.sock";
}

core::result<void> control_server::check_available(const std::string& path) {
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("control socket path must be 1-{} bytes: {}",
                                      sizeof(sockaddr_un::sun_path) - 1, core::log_text(path)));
    const auto dir = parent_of(path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno != ENOENT || ::mkdir(dir.c_str(), 0700) != 0)
            return core::fail(core::errc::io_error,
                              fmt::format("cannot create the control socket's directory {}: {}",
                                          dir, std::strerror(errno)));
    } else if (!S_ISDIR(st.st_mode)) {
        return core::fail(core::errc::invalid_argument, fmt::format("{} is not a directory", dir));
    }
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{} exists and is not a socket: remove it or choose "
                                          "another control socket path",
                                          path));
        if (answers(path))
            return core::fail(core::errc::invalid_argument,
                              fmt::format("another `tunnel up` is listening on {} (stop it with "
                                          "`tunnel down`, or give another --control path)",
                                          path));
    }
    return {};
}

core::result<std::shared_ptr<control_server>> control_server::open(asio::any_io_executor executor,
                                                                   std::string path,
                                                                   std::shared_ptr<manager> m,
                                                                   control_limits limits) {
    // The directory exists now; a socket at `path` is stale (nobody answers).
    if (auto ok = check_available(path); !ok) return tl::unexpected(ok.error());
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) ::unlink(path.c_str());
    local::acceptor acceptor(executor);
    boost::system::error_code ec;
    acceptor.open(local(), ec);
    if (!ec) {
        // The socket is created 0600 (no window where others could connect).
        const auto old = ::umask(0177);
        acceptor.bind(local::endpoint(path), ec);
        ::umask(old);
    }
    if (!ec) ::chmod(path.c_str(), 0600);
    if (!ec) acceptor.listen(16, ec);
    if (ec)
        return core::fail(
            core::errc::io_error,
            fmt::format("cannot listen on control socket {}: {}", path, ec.message()));
    return std::make_shared<control_server>(executor, std::move(path), std::move(m),
                                            std::move(acceptor), limits);
}

control_server::control_server(asio::any_io_executor executor, std::string path,
                               std::shared_ptr<manager> m, local::acceptor acceptor,
                               control_limits limits)
    : executor_(executor),
      path_(std::move(path)),
      manager_(std::move(m)),
      acceptor_(std::move(acceptor)),
      limits_(limits) {}

control_server::~control_server() {
    if (!stopped_) ::unlink(path_.c_str());
}

void control_server::start() {
    core::spawn(
        executor_, [self = shared_from_this()] { return self->accept_loop(); },
        "control socket accept loop");
}

void control_server::stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    ::unlink(path_.c_str());
    for (auto& c : connections_) {
        if (c->subscription) manager_->unsubscribe(c->subscription);
        c->close();
    }
    connections_.clear();
}

asio::awaitable<void> control_server::drain(std::chrono::milliseconds bound) {
    auto self = shared_from_this();
    if (accepting_ && !stopped_) {
        accepting_ = false;
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        ::unlink(path_.c_str());
    }
    const auto until = std::chrono::steady_clock::now() + bound;
    while (execs_in_flight_ > 0 && std::chrono::steady_clock::now() < until) {
        asio::steady_timer t(executor_, std::chrono::milliseconds(10));
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> control_server::accept_loop() {
    auto self = shared_from_this();
    while (!stopped_ && accepting_) {
        boost::system::error_code ec;
        auto socket =
            co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_ || !accepting_) co_return;
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            spdlog::warn("control socket: accept failed: {}", ec.message());
            asio::steady_timer pause(executor_, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        // The socket is 0600, but a descriptor can be passed on: check who is calling.
        ucred cred{};
        socklen_t cred_len = sizeof cred;
        if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
            cred.uid != ::geteuid()) {
            spdlog::warn(
                "control socket: refused a connection from uid {} (only uid {} may use it)",
                cred.uid, ::geteuid());
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        auto c = std::make_shared<connection>(std::move(socket));
        if (connections_.size() >= limits_.max_connections) {
            auto line = error_line(fmt::format("too many control connections (limit {})",
                                               limits_.max_connections)) +
                        "\n";
            boost::system::error_code ignored;
            asio::write(c->socket, asio::buffer(line), ignored);  // a small write to a new socket
            c->close();
            continue;
        }
        connections_.insert(c);
        core::spawn(
            executor_, [self, c] { return self->serve(c); }, "control connection");
    }
}

asio::awaitable<void> control_server::serve(std::shared_ptr<connection> c) {
    auto self = shared_from_this();
    struct forget {
        control_server& s;
        std::shared_ptr<connection> c;
        ~forget() {
            if (c->subscription) s.manager_->unsubscribe(c->subscription);
            c->subscription = 0;
            c->close();
            s.connections_.erase(c);
        }
    } guard{*this, c};

    asio::steady_timer idle(executor_);
    std::string buffer;
    for (;;) {
        if (c->closed) co_return;
        if (!c->subscription) {
            idle.expires_after(limits_.idle_timeout);
            idle.async_wait([c](boost::system::error_code ec) {
                if (!ec) c->close();
            });
        }
        boost::system::error_code ec;
        const auto n = co_await asio::async_read_until(
            c->socket, asio::dynamic_buffer(buffer, max_request_bytes + 1), '\n',
            asio::redirect_error(asio::use_awaitable, ec));
        idle.cancel();
        if (ec == asio::error::not_found) {
            auto line = error_line(fmt::format("request line longer than {} bytes; closing",
                                               max_request_bytes)) +
                        "\n";
            co_await asio::async_write(c->socket, asio::buffer(line),
                                       asio::redirect_error(asio::use_awaitable, ec));
            co_return;
        }
        if (ec || c->closed) co_return;
        std::string line = buffer.substr(0, n - 1);
        buffer.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (c->subscription) continue;  // an events reader: input is ignored
        if (line.empty()) continue;
        auto req = parse_control_request(line);
        std::string reply;
        bool down = false;
        if (!req) {
            reply = error_line(req.error().message);
        } else if (req->cmd == "events") {
            // The recent events, then every new one, until the reader goes.
            for (const auto& e : manager_->recent_events()) c->queue.push_back(e);
            std::weak_ptr<connection> weak = c;
            const auto max_queue = limits_.max_queued_events;
            c->subscription = manager_->subscribe([weak, max_queue](const std::string& e) {
                auto conn = weak.lock();
                if (!conn || conn->closed || conn->overflow) return;
                if (conn->queue.size() >= max_queue) {
                    conn->overflow = true;
                } else {
                    conn->queue.push_back(e);
                }
                conn->wake.cancel();
            });
            core::spawn(
                executor_, [self, c] { return self->stream_events(c); }, "control events");
            continue;
        } else if (std::string refusal; req->from_args && !plan_command_line(*req, refusal)) {
            // Not one for the pooled path: the caller runs the whole CLI.
            reply = error_line(refusal, req->id);
        } else if (req->cmd == "exec") {
            // The connection is the command's stream from here on.
            auto socket = std::make_shared<local::socket>(std::move(c->socket));
            execs_counted counted{execs_in_flight_};
            co_await serve_exec(socket, manager_, std::move(*req), std::move(buffer));
            co_return;
        } else if (req->cmd == "sftp") {
            // The connection is the SFTP session's byte stream from here on.
            auto socket = std::make_shared<local::socket>(std::move(c->socket));
            execs_counted counted{execs_in_flight_};
            co_await serve_sftp(socket, manager_, std::move(*req), std::move(buffer));
            co_return;
        } else if (req->cmd == "down") {
            nlohmann::json ok{{"ok", true}, {"stopping", true}};
            if (!req->id.is_null()) ok["id"] = req->id;
            reply = ok.dump();
            down = true;
        } else {
            reply = manager_->handle(to_json(*req))
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        reply += '\n';
        co_await asio::async_write(c->socket, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (down) {
            spdlog::info("control: `tunnel down` asked to stop");
            manager_->stop();
            co_return;
        }
        if (ec) co_return;
    }
}

bool control_server::plan_command_line(control_request& req, std::string& refusal) const {
    if (!planner_) {
        refusal = "this manager does not take command lines";
        return false;
    }
    auto plan = planner_(req);
    if (!plan) {
        refusal = plan.error().message;
        return false;
    }
    req.link = std::move(plan->link);
    req.destination = std::move(plan->destination);
    req.command = std::move(plan->command);
    return true;
}

asio::awaitable<void> control_server::stream_events(std::shared_ptr<connection> c) {
    auto self = shared_from_this();
    while (!c->closed) {
        if (c->queue.empty() && !c->overflow) {
            c->wake.expires_after(std::chrono::hours(1));
            boost::system::error_code ec;
            co_await c->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        std::string batch;
        while (!c->queue.empty() && batch.size() < 64 * 1024) {
            batch += c->queue.front();
            batch += '\n';
            c->queue.pop_front();
        }
        if (c->queue.empty() && c->overflow) {
            batch += error_line(fmt::format("events: this reader fell {} events behind; "
                                            "reconnect to follow again",
                                            limits_.max_queued_events)) +
                     "\n";
        }
        boost::system::error_code ec;
        co_await asio::async_write(c->socket, asio::buffer(batch),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec || (c->queue.empty() && c->overflow)) {
            c->close();
            co_return;
        }
    }
}

}  // namespace tunnel::link
