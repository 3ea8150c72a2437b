#include "tunnel_fleet.hpp"

#include <fmt/format.h>

#include "core/spawn.hpp"
#include "forward/supervisor.hpp"
#include "load_origin.hpp"
#include "relay/relay_client.hpp"

namespace tunnel::bench {

struct tunnel_fleet::member {
    std::shared_ptr<forward::supervisor> sup;
    bool published = false;  // io thread only
};

tunnel_fleet::tunnel_fleet(fleet_options o) : options_(std::move(o)) {
    work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        io_.get_executor());
    members_.resize(static_cast<std::size_t>(options_.tunnels));
    thread_ = std::thread([this] { io_.run(); });
}

tunnel_fleet::~tunnel_fleet() {
    stop();
}

void tunnel_fleet::launch(int i) {
    relay::relay_client_options o;
    o.url = options_.url;
    o.ws.token = options_.token;
    o.keepalive = options_.keepalive;
    o.ws.idle_timeout = std::max<std::chrono::milliseconds>(o.keepalive * 2, o.ws.idle_timeout);
    o.known_hosts_file = options_.known_hosts_file;
    auto e =
        relay::parse_expose(fmt::format("n{}={}:{}", i, tunnel_address(i), options_.origin_port));
    if (!e) {
        first_refusal_ = e.error().message;
        ++refused_;
        return;
    }
    o.exposes.push_back(std::move(*e));
    auto& self = members_[static_cast<std::size_t>(i)];
    // Weak: the member holds the supervisor, which holds this callback.
    o.on_event = [this, weak = std::weak_ptr<member>(self)](const relay::relay_event& ev) {
        auto m = weak.lock();
        if (!m) return;
        if (ev.what == relay::relay_event::kind::published) {
            if (m->published) {
                ++republished_;
                return;
            }
            m->published = true;
            ++published_once_;
            --in_flight_;
            launch_next();
        } else if (ev.what == relay::relay_event::kind::refused) {
            if (refused_++ == 0) first_refusal_ = ev.message;
        }
    };
    auto so = relay::relay_supervisor_options(std::move(o));
    if (!so) {
        if (refused_++ == 0) first_refusal_ = so.error().message;
        return;
    }
    auto sup = forward::supervisor::create(io_.get_executor(), std::move(*so));
    if (!sup) {
        if (refused_++ == 0) first_refusal_ = sup.error().message;
        return;
    }
    self->sup = *sup;
    ++in_flight_;
    core::spawn(
        io_,
        [this, s = *sup]() -> asio::awaitable<void> {
            auto r = co_await s->run();
            if (!r && !stopped_ && refused_++ == 0) first_refusal_ = r.error().message;
        },
        "relay_load tunnel client");
}

void tunnel_fleet::launch_next() {
    while (!stopped_ && next_ < options_.tunnels && in_flight_ < options_.concurrency) {
        const int i = next_++;
        members_[static_cast<std::size_t>(i)] = std::make_shared<member>();
        launch(i);
    }
}

core::result<void> tunnel_fleet::attach(std::chrono::milliseconds timeout) {
    // The first client alone: it records the relay's host key (trust on
    // first use) before the others read the file.
    asio::post(io_, [this] {
        members_[0] = std::make_shared<member>();
        next_ = 1;
        launch(0);
    });
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (published_once_.load() < 1 && std::chrono::steady_clock::now() < deadline &&
           refused_.load() == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (published_once_.load() == 1) asio::post(io_, [this] { launch_next(); });
    while (published_once_.load() < options_.tunnels && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (published_once_.load() == options_.tunnels) return {};
    stop();  // first_refusal_ is read once the io thread has ended
    const std::string why = first_refusal_.empty() ? "no client said why" : first_refusal_;
    return core::fail(
        core::errc::timeout,
        fmt::format("{} of {} tunnels published within {} ms ({} refusals or failures; first: {})",
                    published_once_.load(), options_.tunnels, timeout.count(), refused_.load(),
                    why));
}

void tunnel_fleet::stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
        stopped_ = true;
        for (auto& m : members_)
            if (m && m->sup) m->sup->stop();
        work_.reset();
    });
    // The supervisors' run() coroutines end once stopped; anything that
    // lingers past 5 s (a closing WebSocket) is cut.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!io_.stopped() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    io_.stop();
    thread_.join();
    members_.clear();
}

}  // namespace tunnel::bench
