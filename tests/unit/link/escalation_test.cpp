#include "link/escalation.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
namespace {

TEST(RecoveryLadder, StepsEveryPerStepFailuresAndEscalatesOnce) {
    recovery_ladder r(2);
    EXPECT_FALSE(r.on_failure());
    EXPECT_EQ(r.on_failure(), recovery_step::restart_transport);
    EXPECT_FALSE(r.on_failure());
    EXPECT_EQ(r.on_failure(), recovery_step::reset_link);
    EXPECT_FALSE(r.on_failure());
    EXPECT_EQ(r.on_failure(), recovery_step::escalate);
    for (int i = 0; i < 10; ++i) EXPECT_FALSE(r.on_failure()) << "escalates once per outage";
    EXPECT_EQ(r.step(), recovery_step::escalate);
    r.on_recovered();
    EXPECT_EQ(r.step(), recovery_step::reconnect);
    EXPECT_EQ(r.failures(), 0);
    EXPECT_FALSE(r.on_failure());
    EXPECT_EQ(r.on_failure(), recovery_step::restart_transport) << "a new outage starts over";
}

TEST(RecoveryLadder, PerStepOfAtLeastOne) {
    recovery_ladder r(0);
    EXPECT_EQ(r.per_step(), 1);
    EXPECT_EQ(r.on_failure(), recovery_step::restart_transport);
    EXPECT_EQ(r.on_failure(), recovery_step::reset_link);
    EXPECT_EQ(r.on_failure(), recovery_step::escalate);
    EXPECT_EQ(to_string(recovery_step::escalate), "escalate");
}

}  // namespace
}  // namespace tunnel::link
