// `tunnel forward` under failure: sshd restarted on the same port, a link
// that silently drops, stalls or resets (fault proxy), and a stalled target
// that must not slow the other forwards on the same session.
#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "support/fault_proxy.hpp"

namespace tunnel::test::fwd {
namespace {

class ForwardRecovery : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto e = echo_server::start();
        ASSERT_TRUE(e) << e.error().message;
        echo = std::move(*e);
        auto p = unused_port();
        ASSERT_TRUE(p);
        lp = *p;
    }
    std::vector<std::string> fast_keepalive() {
        return {"--keepalive",
                "1s",
                "--keepalive-count",
                "2",
                "-o",
                "ConnectTimeout=2",
                "-L",
                fmt::format("{}:127.0.0.1:{}", lp, echo->port())};
    }
    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
    uint16_t lp = 0;
};

TEST_F(ForwardRecovery, SshdRestartedOnTheSamePortForwardsComeBackByThemselves) {
    auto rp = unused_port();
    ASSERT_TRUE(rp);
    auto args = fast_keepalive();
    args.insert(args.end(), {"-R", fmt::format("{}:127.0.0.1:{}", *rp, echo->port())});
    auto fp = start_forward(fixture_flags(*sshd), args);
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    ASSERT_TRUE(wait_round_trip("127.0.0.1", *rp, 10s)) << fp->err();

    ASSERT_TRUE(sshd->restart());
    const auto t0 = steady::now();
    auto back = wait_round_trip("127.0.0.1", lp, 15s);
    ASSERT_TRUE(back) << fp->err();
    EXPECT_TRUE(wait_round_trip("127.0.0.1", *rp, 5s)) << "-R requested again after the reconnect\n"
                                                       << fp->err();
    const auto recovery = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
    EXPECT_LT(recovery, 10s) << "loose bound; the benchmark measures the real figure";
    EXPECT_NE(fp->err().find("reconnected to root@127.0.0.1"), std::string::npos) << fp->err();
    RecordProperty("recovery_ms", static_cast<int>(recovery.count()));
}

TEST_F(ForwardRecovery, SilentDropIsDetectedByKeepaliveAndRecovered) {
    auto proxy = fault_proxy::start(sshd->port());
    ASSERT_TRUE(proxy);
    auto fp = start_forward(flags_via(*sshd, (*proxy)->port()), fast_keepalive());
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    ASSERT_EQ((*proxy)->accepted(), 1);

    (*proxy)->set_mode(fault_mode::drop);
    // 1 s x 2 keepalives unanswered: declared dead within a few seconds, not never.
    ASSERT_TRUE(eventually(
        [&] { return fp->err().find("stopped answering keepalives") != std::string::npos; }, 8s))
        << fp->err();
    (*proxy)->set_mode(fault_mode::pass);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    EXPECT_GE((*proxy)->accepted(), 2) << "a new connection was made";
}

TEST_F(ForwardRecovery, StalledLinkIsDetectedAndRecovered) {
    auto proxy = fault_proxy::start(sshd->port());
    ASSERT_TRUE(proxy);
    auto fp = start_forward(flags_via(*sshd, (*proxy)->port()), fast_keepalive());
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();

    (*proxy)->set_mode(fault_mode::stall);
    ASSERT_TRUE(eventually(
        [&] { return fp->err().find("stopped answering keepalives") != std::string::npos; }, 8s))
        << fp->err();
    (*proxy)->set_mode(fault_mode::pass);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    EXPECT_GE((*proxy)->accepted(), 2);
}

TEST_F(ForwardRecovery, ResetLinkIsRecovered) {
    auto proxy = fault_proxy::start(sshd->port());
    ASSERT_TRUE(proxy);
    auto fp = start_forward(flags_via(*sshd, (*proxy)->port()), fast_keepalive());
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();

    const auto t0 = steady::now();
    (*proxy)->reset_all();
    ASSERT_TRUE(eventually([&] { return (*proxy)->accepted() >= 2; }, 5s)) << fp->err();
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    EXPECT_LT(steady::now() - t0, 5s) << "a reset is noticed at once, not by keepalive";
}

TEST_F(ForwardRecovery, StalledTargetDoesNotSlowAnotherForwardOnTheSameSession) {
    auto stalled = echo_server::start();
    ASSERT_TRUE(stalled);
    auto sp = unused_port();
    ASSERT_TRUE(sp);
    auto fp = start_forward(fixture_flags(*sshd),
                            {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port()), "-L",
                             fmt::format("{}:127.0.0.1:{}", *sp, (*stalled)->port())});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    ASSERT_TRUE(wait_round_trip("127.0.0.1", *sp, 10s)) << fp->err();

    // Stall one target for 5 s while a client keeps pushing into it.
    (*stalled)->set_paused(true);
    const auto stall_start = steady::now();
    int sfd = connect_tcp("127.0.0.1", *sp);
    ASSERT_GE(sfd, 0);
    const auto stalled_data = random_bytes(32u << 20, 7);
    std::optional<core::result<std::string>> stalled_result;
    std::thread pusher([&] { stalled_result = exchange(sfd, stalled_data, 20000); });

    // Meanwhile 16 MiB must flow through the other forward, well within the stall.
    std::this_thread::sleep_for(
        300ms);  // let the stalled channel fill its windows (not synchronisation)
    const auto data = random_bytes(16u << 20, 8);
    const auto t0 = steady::now();
    int fd = connect_tcp("127.0.0.1", lp);
    ASSERT_GE(fd, 0);
    auto got = exchange(fd, data, 10000);
    ::close(fd);
    const auto took = steady::now() - t0;
    ASSERT_TRUE(got) << got.error().message << "\n" << fp->err();
    EXPECT_EQ(sha256_hex(*got), sha256_hex(data));
    EXPECT_LT(steady::now() - stall_start, 5s)
        << "the other forward finished while the target was still stalled";
    EXPECT_LT(took, 4s);

    // Release the stall: the stalled stream completes intact too.
    while (steady::now() - stall_start < 5s) std::this_thread::sleep_for(50ms);
    (*stalled)->set_paused(false);
    pusher.join();
    ::close(sfd);
    ASSERT_TRUE(stalled_result && *stalled_result)
        << (stalled_result && !*stalled_result ? stalled_result->error().message : "");
    EXPECT_EQ(sha256_hex(**stalled_result), sha256_hex(stalled_data));
}

TEST_F(ForwardRecovery, LocalClientsWaitDuringAnOutageThenGetACleanClose) {
    auto fp = start_forward(
        fixture_flags(*sshd),
        {"--outage-wait", "1s", "-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port())});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    sshd->stop();
    ASSERT_TRUE(eventually([&] { return fp->err().find("retrying in") != std::string::npos; }, 5s))
        << fp->err();
    const auto t0 = steady::now();
    int fd = connect_tcp("127.0.0.1", lp);
    ASSERT_GE(fd, 0) << "still listening during the outage";
    auto got = exchange(fd, "hello", 5000);
    ::close(fd);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_TRUE(got->empty());
    EXPECT_GE(steady::now() - t0, 900ms);
    EXPECT_LT(steady::now() - t0, 3s);
    EXPECT_NE(fp->err().find("no SSH session within 1000 ms"), std::string::npos) << fp->err();
}

TEST_F(ForwardRecovery, MaxRetriesGivesUp) {
    auto fp = start_forward(
        fixture_flags(*sshd),
        {"--max-retries", "2", "-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port())});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    sshd->stop();
    auto code = fp->child->wait(10s);
    ASSERT_TRUE(code) << "gave up within the backoff of 3 attempts\n" << fp->err();
    EXPECT_EQ(*code, 255);
    EXPECT_NE(fp->err().find("gave up after 3 attempts"), std::string::npos) << fp->err();
}

}  // namespace
}  // namespace tunnel::test::fwd
