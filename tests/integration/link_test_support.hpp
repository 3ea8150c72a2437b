// Shared helpers for the link manager's integration tests: a links.yaml for
// the sshd fixture, and a manager running in-process on its own io thread.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "link/link_config.hpp"
#include "link/link_resolve.hpp"
#include "link/manager.hpp"
#include "support/net.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::test::links {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// `options:` for a link to the fixture: its port, key and known_hosts, nothing else.
inline std::string fixture_options(const sshd_fixture& sshd) {
    return fmt::format(
        "{{Port: {}, IdentityFile: {}, IdentitiesOnly: yes, UserKnownHostsFile: {}, "
        "GlobalKnownHostsFile: /dev/null, StrictHostKeyChecking: yes, ConnectTimeout: 5}}",
        sshd.port(), sshd.client_key_path(), sshd.known_hosts_path());
}

// A free loopback port for a -L listener (ssh's -L takes no port 0).
inline uint16_t local_port() {
    auto p = unused_port();
    return p ? *p : 0;
}

// A manager on its own io thread; everything that touches links runs there.
class running_manager {
  public:
    static core::result<std::unique_ptr<running_manager>> start(const std::string& yaml) {
        auto file = link::parse_links_file(yaml, "links.yaml");
        if (!file) return tl::unexpected(file.error());
        ssh::client_flags base;
        base.config_file = "/dev/null";
        std::vector<std::vector<link::resolved_transport>> ts;
        for (const auto& l : file->links) {
            auto r = link::resolve_transports(l, base, ssh::process_resolve_context());
            if (!r) return tl::unexpected(r.error());
            ts.push_back(std::move(*r));
        }
        auto rm = std::unique_ptr<running_manager>(new running_manager());
        auto m = link::manager::create(rm->io_.get_executor(), *file, std::move(ts));
        if (!m) return tl::unexpected(m.error());
        rm->manager_ = *m;
        rm->manager_->subscribe([raw = rm.get()](const std::string& line) {
            std::lock_guard lock(raw->events_mutex_);
            raw->events_.push_back(nlohmann::json::parse(line));
        });
        rm->manager_->start();
        rm->thread_ = std::thread([raw = rm.get()] { raw->io_.run(); });
        return rm;
    }

    ~running_manager() {
        on_io([this] {
            manager_->stop();
            return 0;
        });
        // Connects in flight end at their own deadline: do not wait for them.
        std::this_thread::sleep_for(200ms);
        io_.stop();
        thread_.join();
    }

    // Runs `f` on the io thread and returns its result.
    template <class F>
    auto on_io(F f) -> decltype(f()) {
        std::promise<decltype(f())> p;
        asio::post(io_, [&] { p.set_value(f()); });
        return p.get_future().get();
    }

    nlohmann::json status(const std::string& name) {
        return on_io([&] { return manager_->find(name)->status(); });
    }
    nlohmann::json request(nlohmann::json req) {
        return on_io([&] { return manager_->handle(req); });
    }
    uint16_t local_port(const std::string& name, std::size_t forward) {
        return on_io([&] { return manager_->find(name)->local_port(forward); });
    }
    // The active transport's index, or -1.
    int active(const std::string& name) {
        auto s = status(name);
        return s["transport"].is_object() ? s["transport"]["index"].get<int>() : -1;
    }
    // Polls until link `name` runs over transport `index`; how long it took.
    std::optional<std::chrono::milliseconds> wait_active(const std::string& name, int index,
                                                         std::chrono::milliseconds timeout) {
        const auto start = steady::now();
        while (steady::now() - start < timeout) {
            if (active(name) == index)
                return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
            std::this_thread::sleep_for(10ms);
        }
        return std::nullopt;
    }
    std::vector<nlohmann::json> events() {
        std::lock_guard lock(events_mutex_);
        return events_;
    }
    std::vector<nlohmann::json> events_of(const std::string& type) {
        std::vector<nlohmann::json> out;
        for (auto& e : events())
            if (e.value("type", "") == type) out.push_back(e);
        return out;
    }

  private:
    running_manager() = default;
    asio::io_context io_;
    std::shared_ptr<link::manager> manager_;
    std::thread thread_;
    std::mutex events_mutex_;
    std::vector<nlohmann::json> events_;
};

}  // namespace tunnel::test::links
