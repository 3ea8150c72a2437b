// OpenSSH's escape sequences, byte by byte: recognised only at the start of
// a line, split across reads, off with -e none, another character with -e.
#include "shell/escape_filter.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tunnel::shell {
namespace {

// Feeds each piece as one read and joins what is forwarded.
struct fed {
    std::string forward;
    int help = 0;
    bool disconnect = false;
};

fed feed_all(escape_filter& f, const std::vector<std::string>& reads) {
    fed r;
    for (const auto& chunk : reads) {
        auto step = f.feed(chunk);
        r.forward += step.forward;
        r.help += step.help ? 1 : 0;
        r.disconnect = r.disconnect || step.disconnect;
    }
    return r;
}

TEST(EscapeFilter, TildeDotAtTheStartDisconnects) {
    escape_filter f('~');
    auto step = f.feed("~.");
    EXPECT_TRUE(step.disconnect);
    EXPECT_EQ(step.forward, "");
}

TEST(EscapeFilter, TildeDotAfterNewlineDisconnectsAndKeepsWhatCameBefore) {
    escape_filter f('~');
    auto step = f.feed("ls\r~.rm -rf /\r");
    EXPECT_TRUE(step.disconnect);
    EXPECT_EQ(step.forward, "ls\r");  // nothing after ~. is sent
    EXPECT_EQ(f.feed("more\r").forward, "");
}

TEST(EscapeFilter, LineFeedAlsoStartsALine) {
    escape_filter f('~');
    EXPECT_TRUE(f.feed("echo\n~.").disconnect);
}

TEST(EscapeFilter, TildeInsideALineIsForwarded) {
    escape_filter f('~');
    auto step = f.feed("cd ~.ssh; echo a~?b~~c\r");
    EXPECT_FALSE(step.disconnect);
    EXPECT_FALSE(step.help);
    EXPECT_EQ(step.forward, "cd ~.ssh; echo a~?b~~c\r");
}

TEST(EscapeFilter, TildeQuestionMarkAsksForHelpAndSendsNothing) {
    escape_filter f('~');
    auto step = f.feed("~?");
    EXPECT_TRUE(step.help);
    EXPECT_FALSE(step.disconnect);
    EXPECT_EQ(step.forward, "");
    // Still at the start of a line afterwards, as in OpenSSH.
    EXPECT_TRUE(f.feed("~.").disconnect);
}

TEST(EscapeFilter, DoubleTildeSendsOneTilde) {
    escape_filter f('~');
    auto step = f.feed("~~/bin\r");
    EXPECT_EQ(step.forward, "~/bin\r");
    EXPECT_FALSE(step.disconnect);
    // ~~ leaves the line start: a following ~. is ordinary text.
    escape_filter g('~');
    EXPECT_EQ(g.feed("~~~.").forward, "~~.");
}

TEST(EscapeFilter, TildeBeforeAnotherCharacterSendsBoth) {
    escape_filter f('~');
    EXPECT_EQ(f.feed("~x").forward, "~x");
    escape_filter g('~');
    auto step = g.feed("~\r~.");  // ~ then Enter: both sent, and a new line starts
    EXPECT_EQ(step.forward, "~\r");
    EXPECT_TRUE(step.disconnect);
}

TEST(EscapeFilter, SequencesSplitAcrossReads) {
    escape_filter f('~');
    auto r = feed_all(f, {"echo hi\r", "~", "?", "pwd", "\r", "~", "~", "x\r", "~", "."});
    EXPECT_EQ(r.forward, "echo hi\rpwd\r~x\r");
    EXPECT_EQ(r.help, 1);
    EXPECT_TRUE(r.disconnect);
}

TEST(EscapeFilter, PendingEscapeIsHeldUntilTheNextByte) {
    escape_filter f('~');
    auto first = f.feed("\r~");
    EXPECT_EQ(first.forward, "\r");
    EXPECT_TRUE(f.pending());
    auto second = f.feed("a");
    EXPECT_EQ(second.forward, "~a");
    EXPECT_FALSE(f.pending());
}

TEST(EscapeFilter, NoneForwardsEverything) {
    escape_filter f(std::nullopt);
    auto step = f.feed("~.~?~~\r~.");
    EXPECT_EQ(step.forward, "~.~?~~\r~.");
    EXPECT_FALSE(step.disconnect);
    EXPECT_FALSE(step.help);
}

TEST(EscapeFilter, CustomEscapeCharacter) {
    escape_filter f('#');
    auto step = f.feed("~.");
    EXPECT_FALSE(step.disconnect);  // ~ is ordinary now
    EXPECT_EQ(step.forward, "~.");
    auto r = feed_all(f, {"\r#", "#", "\r#?", "#."});
    EXPECT_EQ(r.forward, "\r#\r");
    EXPECT_EQ(r.help, 1);
    EXPECT_TRUE(r.disconnect);
}

TEST(EscapeFilter, ControlCharacterEscape) {
    auto e = parse_escape_char("^]");
    ASSERT_TRUE(e) << e.error().message;
    ASSERT_TRUE(e->has_value());
    EXPECT_EQ(**e, '\x1d');
    escape_filter f(*e);
    EXPECT_TRUE(f.feed("\x1d.").disconnect);
    EXPECT_EQ(display_escape_char('\x1d'), "^]");
}

TEST(EscapeFilter, ParsesTheDashEArgument) {
    auto none = parse_escape_char("none");
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_value());
    auto hash = parse_escape_char("#");
    ASSERT_TRUE(hash);
    EXPECT_EQ(**hash, '#');
    auto caret = parse_escape_char("^");  // one character: the caret itself, as in ssh
    ASSERT_TRUE(caret);
    EXPECT_EQ(**caret, '^');
    for (const char* bad : {"", "ab", "^1", "~~", "\xc3\xa9", "\x80"}) {
        auto r = parse_escape_char(bad);
        ASSERT_FALSE(r) << "accepted " << bad;
        EXPECT_EQ(r.error().code, core::errc::invalid_argument);
        EXPECT_NE(r.error().message.find("-e"), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("none"), std::string::npos) << r.error().message;
    }
}

TEST(EscapeFilter, HelpNamesTheEscapeCharacterWithRawModeLineEnds) {
    const auto help = escape_help('#');
    EXPECT_NE(help.find("#.   - terminate connection\r\n"), std::string::npos) << help;
    EXPECT_NE(help.find("#?"), std::string::npos);
    EXPECT_NE(help.find("##"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::shell
