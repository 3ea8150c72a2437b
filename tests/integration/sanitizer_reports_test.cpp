// A sanitizer report from a process a test starts fails that test, however
// the process ends and wherever its stderr goes (support/sanitizer_reports.hpp).
// The child is sanitizer_probe, built with the same -fsanitize flags as the
// tunnel binary; without sanitizers (a plain build) there is nothing to check.
#include <chrono>
#include <string>
#include <string_view>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/sanitizer_reports.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view sanitize = TUNNEL_SANITIZE;
const std::string probe = TUNNEL_SANITIZER_PROBE;

bool sanitized_with(std::string_view what) {
    return sanitize.find(what) != std::string_view::npos;
}

TEST(SanitizerReports, LeakInAChildThatExitedZeroFailsTheTest) {
    if (!sanitized_with("address")) GTEST_SKIP() << "not an ASan build";
    // exit code and stderr are ignored here, as many tests do with children.
    EXPECT_NONFATAL_FAILURE((void)run({probe, "leak"}), "LeakSanitizer");
}

TEST(SanitizerReports, HeapOverflowInABackgroundChildFailsTheTestWhenReaped) {
    if (!sanitized_with("address")) GTEST_SKIP() << "not an ASan build";
    auto child = spawn({probe, "overflow"});  // stdout and stderr go to /dev/null
    ASSERT_TRUE(child) << child.error().message;
    // UBSan (object-size) or ASan (heap-buffer-overflow): whichever sees it first.
    EXPECT_NONFATAL_FAILURE((void)child->wait(30s), "sanitizer report from");
}

TEST(SanitizerReports, GrandchildReportIsFoundAtTheEnd) {
    if (!sanitized_with("address")) GTEST_SKIP() << "not an ASan build";
    // sh is reaped, the probe it started is not ours: its report waits for the
    // end-of-program check, which this takes over.
    // (Two commands, so that sh cannot exec the probe in its own place.)
    auto r = run({"sh", "-c", "\"$0\" leak; exit $?", probe});
    EXPECT_EQ(r.exit_code, 1) << r.describe();  // sh passes on ASan's exit code
    EXPECT_NE(take_unseen_sanitizer_reports().find("LeakSanitizer"), std::string::npos);
}

TEST(SanitizerReports, CleanChildReportsNothing) {
    auto r = run({probe, "clean"});
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(take_unseen_sanitizer_reports(), "");
}

}  // namespace
}  // namespace tunnel::test
