#include "sftp/packet.hpp"

#include <gtest/gtest.h>

namespace tunnel::sftp {
namespace {

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
            static_cast<char>(v)};
}

std::string str(std::string_view s) {
    return be32(static_cast<std::uint32_t>(s.size())) + std::string(s);
}

// A reply as a server would send it: length, type, id, body.
std::string reply(fxp type, std::uint32_t id, const std::string& body) {
    std::string p(1, static_cast<char>(type));
    p += be32(id) + body;
    return be32(static_cast<std::uint32_t>(p.size())) + p;
}

TEST(SftpPacket, WriterFramesLengthTypeAndId) {
    auto p = packet_writer(fxp::open, 7).str("/tmp/x").u32(open_read).finish();
    ASSERT_EQ(p.size(), 4u + 1 + 4 + 4 + 6 + 4);
    EXPECT_EQ(p.substr(0, 4), be32(static_cast<std::uint32_t>(p.size() - 4)));
    EXPECT_EQ(p[4], static_cast<char>(fxp::open));
    EXPECT_EQ(p.substr(5, 4), be32(7));
    EXPECT_EQ(p.substr(9, 10), str("/tmp/x"));
}

TEST(SftpPacket, InitCarriesVersionNotId) {
    auto p = packet_writer::init(3).finish();
    EXPECT_EQ(p, be32(5) + std::string(1, 1) + be32(3));
}

TEST(SftpPacket, AttrsRoundTrip) {
    file_attrs a;
    a.size = 1ull << 40;
    a.permissions = 0100644;
    a.atime = 11;
    a.mtime = 22;
    auto p = packet_writer(fxp::attrs, 1).attrs(a).finish();
    auto f = next_frame(p);
    ASSERT_TRUE(f && *f);
    EXPECT_EQ((*f)->type, fxp::attrs);
    auto b = parse_attrs((*f)->body);
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->size, a.size);
    EXPECT_EQ(b->permissions, a.permissions);
    EXPECT_EQ(b->mtime, 22u);
    EXPECT_FALSE(b->uid);
    EXPECT_TRUE(b->is_reg());
}

TEST(SftpPacket, NextFrameWaitsForWholePacket) {
    auto p = reply(fxp::status, 9, be32(0) + str("ok") + str(""));
    for (std::size_t n = 0; n < p.size(); ++n) {
        auto f = next_frame(std::string_view(p).substr(0, n));
        ASSERT_TRUE(f);
        EXPECT_FALSE(*f) << n;
    }
    const std::string buf = p + "trailing";
    auto f = next_frame(buf);
    ASSERT_TRUE(f && *f);
    EXPECT_EQ((*f)->id, 9u);
    EXPECT_EQ((*f)->size, p.size());
    auto s = parse_status((*f)->body);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->code, status_code::ok);
    EXPECT_EQ(s->message, "ok");
}

TEST(SftpPacket, OversizedAndTinyLengthsAreErrors) {
    EXPECT_FALSE(next_frame(be32(max_packet + 1) + "x"));
    EXPECT_FALSE(next_frame(be32(0xffffffff)));
    EXPECT_FALSE(next_frame(be32(0) + "abcd"));
    EXPECT_FALSE(next_frame(be32(4) + "abcd"));
}

TEST(SftpPacket, StringLongerThanPacketIsAnError) {
    EXPECT_FALSE(parse_data(be32(100) + "short"));
    EXPECT_FALSE(parse_handle(be32(5) + "abc"));
    EXPECT_FALSE(parse_handle(str(std::string(300, 'h'))));  // handles are at most 256 bytes
}

TEST(SftpPacket, NameReply) {
    std::string body = be32(2) + str("a.txt") + str("-rw-r--r-- a.txt") + be32(attr_size) +
                       be32(0) + be32(5) + str("dir") + str("") + be32(attr_permissions) +
                       be32(040755);
    auto n = parse_name(body);
    ASSERT_TRUE(n) << n.error().message;
    ASSERT_EQ(n->size(), 2u);
    EXPECT_EQ((*n)[0].filename, "a.txt");
    EXPECT_EQ((*n)[0].attrs.size, 5u);
    EXPECT_TRUE((*n)[1].attrs.is_dir());
}

TEST(SftpPacket, NameCountBeyondPacketIsRefusedWithoutAllocating) {
    EXPECT_FALSE(parse_name(be32(0x7fffffff) + str("a")));
    EXPECT_FALSE(parse_name(be32(2) + str("a") + str("") + be32(0)));  // second entry missing
}

TEST(SftpPacket, ExtendedAttrCountIsBounded) {
    EXPECT_FALSE(parse_attrs(be32(attr_extended) + be32(1000000)));
    auto ok = parse_attrs(be32(attr_extended) + be32(1) + str("k") + str("v"));
    EXPECT_TRUE(ok);
}

TEST(SftpPacket, VersionExtensions) {
    auto v = parse_version(str("posix-rename@openssh.com") + str("1") + str("limits@openssh.com") +
                           str("1"));
    ASSERT_TRUE(v);
    ASSERT_EQ(v->extensions.size(), 2u);
    EXPECT_EQ(v->extensions[1].first, "limits@openssh.com");
    EXPECT_FALSE(parse_version(str("dangling")));
}

TEST(SftpPacket, LimitsAndStatvfs) {
    std::string body;
    for (std::uint32_t v : {262144u, 261120u, 261120u, 1024u}) body += be32(0) + be32(v);
    auto l = parse_limits(body);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->max_read_length, 261120u);
    EXPECT_FALSE(parse_limits(body.substr(0, 20)));

    std::string vfs;
    for (int i = 0; i < 11; ++i) vfs += be32(0) + be32(i == 1 ? 4096 : i == 4 ? 10 : 0);
    auto s = parse_statvfs(vfs);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->available_bytes(), 40960u);
    EXPECT_FALSE(parse_statvfs(vfs.substr(1)));
}

}  // namespace
}  // namespace tunnel::sftp
