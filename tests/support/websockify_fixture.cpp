#include "support/websockify_fixture.hpp"

#include <csignal>

#include <fmt/format.h>

#include "support/net.hpp"

namespace tunnel::test {

core::result<websockify_fixture> websockify_fixture::start(websockify_options options) {
    auto dir = temp_dir::create("tunnel-websockify");
    if (!dir) return tl::unexpected(dir.error());
    if (options.tls) {
        auto r = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                      "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                      dir->file("key.pem"), "-out", dir->file("cert.pem")});
        if (!r.ok()) return core::fail(core::errc::io_error, "openssl req failed: " + r.describe());
    }
    const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
    std::string last;
    for (int attempt = 0; attempt < 5; ++attempt) {
        auto port = unused_port();
        if (!port) return tl::unexpected(port.error());
        std::vector<std::string> argv{"websockify", "-v"};
        if (options.tls) {
            argv.push_back("--cert=" + dir->file("cert.pem"));
            argv.push_back("--key=" + dir->file("key.pem"));
            argv.push_back("--ssl-only");
        }
        argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
        argv.push_back(fmt::format("127.0.0.1:{}", *port));
        argv.push_back(fmt::format("127.0.0.1:{}", options.target_port));
        spawn_options so;
        so.stdout_path = so.stderr_path = dir->file("websockify.log");
        auto child = spawn(argv, so);
        if (!child) return tl::unexpected(child.error());
        while (std::chrono::steady_clock::now() < deadline && child->running()) {
            if (port_accepts(*port))
                return websockify_fixture(std::move(*dir), std::move(*child), *port, options.tls);
            if (wait_for_port(*port, std::chrono::milliseconds(100))) continue;
        }
        child->terminate();
        last = read_text_file(dir->file("websockify.log")).value_or("");
        if (std::chrono::steady_clock::now() >= deadline) break;
    }
    return core::fail(core::errc::connection_failed, "websockify did not start: " + last);
}

websockify_fixture::~websockify_fixture() {
    if (process_) {
        process_->signal(SIGCONT);
        process_->terminate();
    }
}

std::string websockify_fixture::url() const {
    return fmt::format("{}://127.0.0.1:{}/", tls_ ? "wss" : "ws", port_);
}

std::string websockify_fixture::log() const {
    return read_text_file(dir_.file("websockify.log")).value_or("");
}

void websockify_fixture::pause() const {
    if (process_) process_->signal(SIGSTOP);
}

void websockify_fixture::resume() const {
    if (process_) process_->signal(SIGCONT);
}

}  // namespace tunnel::test
