// An SSH session over a WebSocket (connect_options::open_stream with
// transport::websocket_opener) through Debian's websockify to a real sshd,
// and the host-key pinning the relay client relies on.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/asio.hpp"
#include "exec/executor.hpp"
#include "pool/circuit_breaker.hpp"
#include "pool/session_pool.hpp"
#include "ssh/session.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/websockify_fixture.hpp"
#include "transport/websocket_stream.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

template <class T>
T run_on(asio::io_context& io, asio::awaitable<T> work) {
    std::optional<T> out;
    io.restart();
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(work)); },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run();
    return std::move(*out);
}

class WsSession : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        websockify_options wo;
        wo.target_port = sshd->port();
        auto w = websockify_fixture::start(wo);
        ASSERT_TRUE(w) << w.error().message;
        ws.emplace(std::move(*w));
    }

    ssh::connect_options target(
        std::function<void(const transport::ws_attach_info&)> on_attach = {}) const {
        ssh::connect_options o;
        o.host = "127.0.0.1";
        o.port =
            sshd->port();  // names the server in known_hosts; the bytes go through the WebSocket
        o.user = "root";
        o.use_agent = false;
        o.identity_files = {sshd->client_key_path()};
        o.skip_missing_identities = false;
        o.password_authentication = false;
        o.batch_mode = true;
        o.user_known_hosts_files = {sshd->known_hosts_path()};
        o.connect_timeout = 10s;
        auto url = transport::parse_ws_url(ws->url());
        EXPECT_TRUE(url);
        o.open_stream = transport::websocket_opener(*url, {}, std::move(on_attach));
        return o;
    }

    std::optional<sshd_fixture> sshd;
    std::optional<websockify_fixture> ws;
    asio::io_context io;
};

// Connects, runs `script` and disconnects (so the WebSocket pump ends too).
asio::awaitable<core::result<exec::exec_result>> connect_and_run(asio::any_io_executor ex,
                                                                 ssh::connect_options o,
                                                                 std::string script) {
    pool::session_pool pool(ex, {}, core::system_clock_source(),
                            [](asio::any_io_executor e, ssh::connect_options c) {
                                return ssh::session::connect(e, std::move(c));
                            });
    pool::breaker_registry breakers{{5, 30s}};
    exec::executor runner(pool, breakers);
    exec::command cmd;
    cmd.argv = {std::move(script)};
    exec::run_options ro;
    ro.capture = true;
    auto r = co_await runner.run(o, cmd, {}, std::move(ro));
    co_return r;
}

// Connects, disconnects, and returns the host key fingerprint (the WebSocket
// pump keeps the io_context busy while a session is open).
asio::awaitable<core::result<std::string>> connect_once(asio::any_io_executor ex,
                                                        ssh::connect_options o) {
    auto s = co_await ssh::session::connect(ex, std::move(o));
    if (!s) co_return tl::unexpected(s.error());
    std::string fp = (*s)->host_key_fingerprint();
    (*s)->disconnect();
    co_return fp;
}

TEST_F(WsSession, ExecRunsAndBulkOutputArrivesWhole) {
    int attaches = 0;
    auto r =
        run_on(io, connect_and_run(io.get_executor(),
                                   target([&](const transport::ws_attach_info&) { ++attaches; }),
                                   "echo via-ws; head -c 33554432 /dev/zero | tr '\\0' x"));
    ASSERT_TRUE(r) << r.error().message << "\nwebsockify: " << ws->log();
    EXPECT_EQ(r->exit_code(), 0) << r->err;
    EXPECT_EQ(r->out.rfind("via-ws\n", 0), 0u);
    EXPECT_EQ(r->out.size(), 7u + 33554432u);
    EXPECT_EQ(r->out.find_first_not_of('x', 7), std::string::npos);
    EXPECT_EQ(attaches, 1);
}

TEST_F(WsSession, PinnedFingerprintIsEnforced) {
    auto probe = run_on(io, connect_once(io.get_executor(), target()));
    ASSERT_TRUE(probe) << probe.error().message;
    const std::string fp = *probe;

    auto pinned = target();
    pinned.user_known_hosts_files = {"/dev/null"};  // the pin alone decides
    pinned.host_key_fingerprint = fp;
    auto ok = run_on(io, connect_once(io.get_executor(), pinned));
    ASSERT_TRUE(ok) << ok.error().message;

    pinned.host_key_fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    auto refused = run_on(io, connect_once(io.get_executor(), pinned));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, core::errc::host_key_changed);
    EXPECT_NE(refused.error().message.find(fp), std::string::npos) << refused.error().message;
    EXPECT_NE(refused.error().message.find("SHA256:AAAA"), std::string::npos)
        << refused.error().message;
}

TEST_F(WsSession, ChangedKeyNamesBothFingerprints) {
    auto dir = temp_dir::create("tunnel-wss-kh");
    ASSERT_TRUE(dir);
    auto keygen = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir->file("other")});
    ASSERT_TRUE(keygen.ok()) << keygen.describe();
    auto pub = read_text_file(dir->file("other.pub"));
    ASSERT_TRUE(pub);
    auto fp = run({"ssh-keygen", "-l", "-E", "sha256", "-f", dir->file("other.pub")});
    ASSERT_TRUE(fp.ok());
    const auto old_fp = fp.out.substr(fp.out.find("SHA256:"), 50);
    ASSERT_TRUE(write_text_file(dir->file("known_hosts"),
                                fmt::format("[127.0.0.1]:{} {}", sshd->port(), *pub)));
    auto o = target();
    o.user_known_hosts_files = {dir->file("known_hosts")};
    auto r = run_on(io, connect_once(io.get_executor(), o));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, core::errc::host_key_changed);
    EXPECT_NE(r.error().message.find(old_fp.substr(0, old_fp.find(' '))), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("ssh-keygen -R"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace tunnel::test
