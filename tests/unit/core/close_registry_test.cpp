#include "core/close_registry.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace tunnel::core {
namespace {

TEST(CloseRegistry, EntriesGoAwayWithTheirHandles) {
    close_registry reg;
    int closed = 0;
    {
        auto a = reg.add("public connection", [&] { ++closed; });
        auto b = reg.add("tunnel", [&] { ++closed; });
        EXPECT_EQ(reg.size(), 2u);
        EXPECT_EQ(reg.count("tunnel"), 1u);
        EXPECT_TRUE(a.active());
        EXPECT_EQ(reg.describe(), "1 public connection, 1 tunnel");
    }
    EXPECT_EQ(reg.size(), 0u);
    EXPECT_EQ(reg.describe(), "nothing");
    reg.close_all();
    EXPECT_EQ(closed, 0) << "an owner that finished by itself is not closed again";
}

TEST(CloseRegistry, CloseAllClosesEachEntryOnce) {
    close_registry reg;
    std::vector<std::string> closed;
    auto a = reg.add("public connection", [&] { closed.push_back("a"); });
    auto b = reg.add("tunnel", [&] { closed.push_back("b"); });
    reg.close_all();
    EXPECT_EQ(closed, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(reg.closing());
    EXPECT_EQ(reg.size(), 0u);
    EXPECT_FALSE(a.active());
    reg.close_all();
    a.reset();
    EXPECT_EQ(closed.size(), 2u);
}

TEST(CloseRegistry, AddAfterCloseAllClosesAtOnce) {
    close_registry reg;
    reg.close_all();
    int closed = 0;
    auto late = reg.add("public connection", [&] { ++closed; });
    EXPECT_EQ(closed, 1) << "a connection accepted during a shutdown must not outlive it";
    EXPECT_FALSE(late.active());
    EXPECT_EQ(reg.size(), 0u);
}

TEST(CloseRegistry, CloseFunctionsMayDestroyOtherOwnersAndAddMore) {
    close_registry reg;
    int closed = 0;
    // An owner whose close destroys another owner (a tunnel ending its
    // connections), and one that registers something new while closing.
    std::unique_ptr<close_registry::handle> other;
    auto first = reg.add("a", [&] {
        ++closed;
        other.reset();
    });
    other = std::make_unique<close_registry::handle>(reg.add("b", [&] { ++closed; }));
    close_registry::handle added;
    auto adder = reg.add("c", [&] { added = reg.add("d", [&] { closed += 10; }); });
    reg.close_all();
    EXPECT_EQ(closed, 11) << "b was destroyed by a's close; d was closed as it was added";
    EXPECT_EQ(reg.size(), 0u);
}

TEST(CloseRegistry, HandlesMayOutliveTheRegistry) {
    close_registry::handle h;
    {
        close_registry reg;
        h = reg.add("tunnel", [] {});
        EXPECT_TRUE(h.active());
    }
    EXPECT_FALSE(h.active());
    h.reset();  // no registry left: nothing to do, no crash
}

TEST(CloseRegistry, MovedHandleKeepsTheEntry) {
    close_registry reg;
    int closed = 0;
    auto a = reg.add("x", [&] { ++closed; });
    close_registry::handle b = std::move(a);
    EXPECT_FALSE(a.active());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_TRUE(b.active());
    b = reg.add("y", [&] { closed += 10; });  // the old entry goes
    EXPECT_EQ(reg.size(), 1u);
    reg.close_all();
    EXPECT_EQ(closed, 10);
}

}  // namespace
}  // namespace tunnel::core
