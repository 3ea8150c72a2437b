#include "transfer/retry_policy.hpp"

#include <gtest/gtest.h>

#include "transfer/progress.hpp"

namespace tunnel::transfer {
namespace {

using namespace std::chrono_literals;

TEST(RetryPolicy, RetriesIsAWholeNumberUpToTheMax) {
    EXPECT_EQ(*parse_retries("0"), 0u);
    EXPECT_EQ(*parse_retries("5"), 5u);
    EXPECT_EQ(*parse_retries("100"), max_retries);
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", "whole number"},     {"-1", "cannot be negative"},
        {"+3", "whole number"},   {" 3", "whole number"},
        {"3x", "whole number"},   {"2.5", "whole number"},
        {"101", "too many"},      {"4294967296", "too many"},
        {"five", "whole number"}, {"99999999999999999999", "too many"}};
    for (const auto& [text, why] : bad) {
        auto r = parse_retries(text);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, core::errc::invalid_argument);
        EXPECT_NE(r.error().message.find("--retries \"" + text + "\""), std::string::npos)
            << r.error().message;
        EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("from 0 (no retries, the default) to 100"),
                  std::string::npos)
            << r.error().message;
    }
}

TEST(RetryPolicy, OnlyALostConnectionIsRetried) {
    for (auto code : {core::errc::disconnected, core::errc::connection_failed, core::errc::timeout,
                      core::errc::auth_unavailable})
        EXPECT_TRUE(connection_lost({code, "x"})) << core::to_string(code);
    for (auto code :
         {core::errc::invalid_argument, core::errc::not_found, core::errc::permission_denied,
          core::errc::io_error, core::errc::protocol_error, core::errc::host_key_unknown,
          core::errc::host_key_changed, core::errc::auth_failed, core::errc::channel_failed,
          core::errc::circuit_open, core::errc::denied, core::errc::resource_exhausted,
          core::errc::cancelled})
        EXPECT_FALSE(connection_lost({code, "x"})) << core::to_string(code);
}

TEST(RetryPolicy, DescribeSaysWhatHappenedWhichRetryAndWhen) {
    retry_event e{2, 5, 1600ms, {core::errc::disconnected, "connection to h closed"}, true};
    EXPECT_EQ(describe(e), "connection lost, retry 2/5 in 1.6s: connection to h closed");
    e.connected = false;
    e.delay = 40ms;
    EXPECT_EQ(describe(e), "cannot reconnect, retry 2/5 in 0.0s: connection to h closed");
}

TEST(RetryPolicy, AdviceNamesResumeAndRetries) {
    auto none = lost_connection_advice(0);
    EXPECT_NE(none.find("connection lost"), std::string::npos) << none;
    EXPECT_NE(none.find("--resume"), std::string::npos) << none;
    EXPECT_NE(none.find("--retries N"), std::string::npos) << none;
    EXPECT_EQ(lost_connection_advice(1).find("connection lost 2 times, gave up after 1 retry "
                                             "(--retries 1)"),
              0u)
        << lost_connection_advice(1);
    EXPECT_NE(lost_connection_advice(5).find("gave up after 5 retries (--retries 5)"),
              std::string::npos);
    EXPECT_EQ(lost_connection_advice(3, false), "could not connect in 4 attempts (--retries 3)");
}

// Delays come from the injected random source: r = 0.999 picks the top of
// the current ceiling, so the sequence shows the ceiling itself.
core::random_source fixed(double r) {
    return [r] { return r; };
}

TEST(RetrySchedule, GivesAtMostTheAllowedRetries) {
    retry_schedule none(0, default_retry_backoff(), fixed(0.5));
    EXPECT_FALSE(none.next(true));
    EXPECT_EQ(none.used(), 0u);

    retry_schedule three(3, default_retry_backoff(), fixed(0.5));
    EXPECT_TRUE(three.next(true));
    EXPECT_TRUE(three.next(false));
    EXPECT_TRUE(three.next(true));
    EXPECT_FALSE(three.next(true));
    EXPECT_FALSE(three.next(true));
    EXPECT_EQ(three.used(), 3u);
    EXPECT_EQ(three.allowed(), 3u);
}

TEST(RetrySchedule, BackoffGrowsWithoutProgressIsCappedAndRestartsAfterProgress) {
    core::backoff_policy p{1000ms, 30'000ms, 0};
    retry_schedule s(10, p, fixed(0.999999));
    // Attempts that moved nothing: the ceiling doubles up to the cap.
    EXPECT_EQ(*s.next(false), 1000ms);
    EXPECT_EQ(*s.next(false), 2000ms);
    EXPECT_EQ(*s.next(false), 4000ms);
    EXPECT_EQ(*s.next(false), 8000ms);
    EXPECT_EQ(*s.next(false), 16000ms);
    EXPECT_EQ(*s.next(false), 30000ms);
    EXPECT_EQ(*s.next(false), 30000ms);
    // An attempt that moved data: the next cut is a new blip.
    EXPECT_EQ(*s.next(true), 1000ms);
    EXPECT_EQ(*s.next(false), 2000ms);
}

TEST(RetrySchedule, DelaysAreJitteredBetweenZeroAndTheCeiling) {
    retry_schedule low(5, default_retry_backoff(), fixed(0.0));
    EXPECT_EQ(*low.next(true), 0ms);
    retry_schedule mid(5, default_retry_backoff(), fixed(0.5));
    EXPECT_EQ(*mid.next(true), 500ms);
    // The default: ceiling 1 s at first, never above 30 s.
    retry_schedule top(100, default_retry_backoff(), fixed(0.999999));
    std::chrono::milliseconds most{0};
    for (int i = 0; i < 100; ++i) most = std::max(most, *top.next(false));
    EXPECT_EQ(most, 30s);
}

TEST(RetryState, StatsStartAgainButKeepWhatWasDone) {
    transfer_stats s;
    s.files = 2;
    s.deleted = 1;
    s.dirs = 3;
    s.links = 4;
    s.skipped = 5;
    s.failed = 2;
    s.errors = {"a", "b"};
    s.only_input_errors = false;
    s.connection_lost = core::error{core::errc::disconnected, "gone"};
    s.start_again();
    EXPECT_EQ(s.files, 2u);
    EXPECT_EQ(s.deleted, 1u);
    EXPECT_EQ(s.dirs, 3u);
    EXPECT_EQ(s.links, 4u);
    EXPECT_EQ(s.skipped, 0u);
    EXPECT_EQ(s.failed, 0u);
    EXPECT_TRUE(s.errors.empty());
    EXPECT_TRUE(s.only_input_errors);
    EXPECT_FALSE(s.connection_lost);
}

TEST(RetryState, FinishedPathsAreRememberedOnlyWhenTracked) {
    transfer_stats s;
    s.mark_finished("/a");
    EXPECT_FALSE(s.finished_before("/a"));
    s.track_finished = true;
    s.mark_finished("/a");
    EXPECT_TRUE(s.finished_before("/a"));
    EXPECT_FALSE(s.finished_before("/b"));
    s.start_again();
    EXPECT_TRUE(s.finished_before("/a")) << "what finished stays finished across attempts";
}

TEST(RetryState, ProgressCountsMovedBytesApartFromResumedOnes) {
    progress p(false);
    p.add_total(100);
    p.resumed(40);
    p.advance(10);
    EXPECT_EQ(p.done(), 50u);
    EXPECT_EQ(p.moved(), 10u);
    p.start_again();
    EXPECT_EQ(p.done(), 0u);
    EXPECT_EQ(p.moved(), 0u);
}

}  // namespace
}  // namespace tunnel::transfer
