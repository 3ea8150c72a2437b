#include "core/log_text.hpp"

#include <gtest/gtest.h>

namespace tunnel::core {
namespace {

TEST(LogText, PrintableTextIsKept) {
    EXPECT_EQ(log_text("alice-01 ok"), "alice-01 ok");
}

TEST(LogText, ControlCharactersAndNonAsciiAreEscaped) {
    // A forged log line, a terminal escape, a backslash, UTF-8 (bidi override).
    EXPECT_EQ(log_text("a\nINFO fake\x1b[2Jb\\c\xe2\x80\xae"),
              "a\\x0aINFO fake\\x1b[2Jb\\x5cc\\xe2\\x80\\xae");
    EXPECT_EQ(log_text(std::string_view("\0x", 2)), "\\x00x");
}

TEST(LogText, LongTextIsCut) {
    const std::string long_text(1000, 'a');
    EXPECT_EQ(log_text(long_text, 10), "aaaaaaaaaa...(1000 bytes)");
    EXPECT_EQ(log_text(long_text).size(), 128u + std::string("...(1000 bytes)").size());
}

}  // namespace
}  // namespace tunnel::core
