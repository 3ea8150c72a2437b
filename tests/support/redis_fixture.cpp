#include "support/redis_fixture.hpp"

#include <csignal>
#include <thread>

#include <fmt/format.h>

#include "support/net.hpp"

namespace tunnel::test {

namespace {

constexpr auto start_timeout = std::chrono::seconds(5);

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

std::string cluster_yaml(const redis_fixture& redis, const std::string& node,
                         const std::string& secret_file, std::uint16_t internal_port) {
    if (internal_port == 0) internal_port = unused_port().value_or(1);
    return fmt::format(
        "cluster:\n  redis: {}\n  node: {}\n  internal_listen: 127.0.0.1:{}\n  secret_file: {}\n",
        redis.url(), node, internal_port, secret_file);
}

core::result<redis_fixture> redis_fixture::start(options opts) {
    auto dir = temp_dir::create("tunnel-redis");
    if (!dir) return tl::unexpected(dir.error());
    // The port may be taken between unused_port() and the bind: try a few.
    for (int attempt = 0; attempt < 5; ++attempt) {
        auto port = unused_port();
        if (!port) return tl::unexpected(port.error());
        redis_fixture f(std::move(*dir), *port, opts.password);
        auto up = f.launch();
        if (up) return f;
        dir = std::move(f.dir_);
        if (attempt == 4) return tl::unexpected(up.error());
    }
    return core::fail(core::errc::io_error, "redis-server did not start");
}

core::result<void> redis_fixture::launch() {
    std::vector<std::string> argv{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_.path(),
                                  "--daemonize",
                                  "no",
                                  "--logfile",
                                  dir_.file("redis.log")};
    if (!password_.empty()) {
        argv.push_back("--requirepass");
        argv.push_back(password_);
    }
    spawn_options so;
    so.stderr_path = dir_.file("redis.err");
    auto child = spawn(argv, so);
    if (!child) return tl::unexpected(child.error());
    if (!wait_for_port(port_, start_timeout)) {
        (void)child->terminate(std::chrono::milliseconds(200));
        auto log = read_text_file(dir_.file("redis.log"));
        return core::fail(core::errc::io_error,
                          fmt::format("redis-server on port {} did not start: {}", port_,
                                      log ? *log : std::string("(no log)")));
    }
    server_.emplace(std::move(*child));
    return {};
}

redis_fixture::~redis_fixture() {
    for (auto& s : sentinels_) (void)s.terminate(std::chrono::milliseconds(500));
    sentinels_.clear();
    stop();
}

std::string redis_fixture::url() const {
    if (password_.empty()) return fmt::format("redis://127.0.0.1:{}", port_);
    return fmt::format("redis://:{}@127.0.0.1:{}", password_, port_);
}

void redis_fixture::stop() {
    if (!server_) return;
    server_->signal(SIGKILL);
    (void)server_->terminate(std::chrono::milliseconds(500));
    server_.reset();
}

core::result<void> redis_fixture::restart() {
    stop();
    // The port is ours (nobody else binds it meanwhile on a test machine,
    // and redis-server sets SO_REUSEADDR): retry briefly while it frees.
    core::result<void> up = core::fail(core::errc::io_error, "not started");
    for (int attempt = 0; attempt < 20; ++attempt) {
        up = launch();
        if (up) return up;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return up;
}

std::string redis_fixture::cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
    run_options ro;
    ro.timeout = std::chrono::seconds(5);
    if (!password_.empty()) ro.env.set.emplace_back("REDISCLI_AUTH", password_);
    argv.insert(argv.end(), args.begin(), args.end());
    return trim(run(argv, ro).out);
}

core::result<std::uint16_t> redis_fixture::start_sentinel() {
    auto port = unused_port();
    if (!port) return tl::unexpected(port.error());
    const std::string conf = dir_.file(fmt::format("sentinel-{}.conf", *port));
    // A sentinel rewrites its config file: it must be writable and its own.
    auto written = write_text_file(
        conf, fmt::format("port {}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} "
                          "1\nsentinel down-after-milliseconds mymaster 1000\n{}",
                          *port, dir_.path(), port_,
                          password_.empty()
                              ? std::string()
                              : fmt::format("sentinel auth-pass mymaster {}\n", password_)));
    if (!written) return tl::unexpected(written.error());
    spawn_options so;
    so.stdout_path = dir_.file(fmt::format("sentinel-{}.log", *port));
    so.stderr_path = so.stdout_path;
    auto child = spawn({"redis-server", conf, "--sentinel"}, so);
    if (!child) return tl::unexpected(child.error());
    if (!wait_for_port(*port, start_timeout))
        return core::fail(core::errc::io_error,
                          fmt::format("redis sentinel on port {} did not start", *port));
    sentinels_.push_back(std::move(*child));
    return *port;
}

}  // namespace tunnel::test
