// htpasswd lists of the `basic` visitor access mode: real yescrypt and bcrypt
// hashes made with libcrypt verify; plain text, DES, MD5, SHA and costly or
// malformed hashes are refused at load with a message that says how to make a
// good one and never echoes the hash; the cache skips repeated hashing.
#include "relay/htpasswd.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tunnel::relay {
namespace {

// A hash of `password` as `mkpasswd -m yescrypt` / `htpasswd -B` would make it.
std::string make_hash(const char* prefix, unsigned long cost, const std::string& password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
    if (!::crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof setting)) return {};
    crypt_data data{};
    const char* out = ::crypt_rn(password.c_str(), setting, &data, sizeof data);
    return out ? std::string(out) : std::string();
}

const std::string& yescrypt_hash() {
    static const std::string h = make_hash("$y$", 0, "correct horse");
    return h;
}
const std::string& bcrypt_hash() {
    static const std::string h = make_hash("$2b$", 5, "battery staple");
    return h;
}

TEST(Htpasswd, AcceptsYescryptAndBcryptAndVerifies) {
    ASSERT_EQ(yescrypt_hash().substr(0, 7), "$y$j9T$");
    ASSERT_EQ(bcrypt_hash().substr(0, 7), "$2b$05$");
    auto list = htpasswd::parse(
        "# visitors\nalice:" + yescrypt_hash() + "\r\n\nbob:" + bcrypt_hash() + "\n",
        "test.htpasswd");
    ASSERT_TRUE(list) << list.error().message;
    ASSERT_EQ(list->entries().size(), 2u);
    EXPECT_TRUE(list->verify("alice", "correct horse"));
    EXPECT_FALSE(list->verify("alice", "correct horse "));
    EXPECT_FALSE(list->verify("alice", "battery staple"));
    EXPECT_TRUE(list->verify("bob", "battery staple"));
    EXPECT_FALSE(list->verify("carol", "correct horse"));  // unknown user: hashed, refused
    EXPECT_FALSE(list->verify("Alice", "correct horse"));  // user names are exact
    EXPECT_FALSE(list->verify("alice", std::string("correct horse\0x", 15)));
    EXPECT_FALSE(list->verify("alice", std::string(2000, 'a')));
    // $2y$ (PHP's spelling of the same algorithm) is accepted too.
    auto y = bcrypt_hash();
    y[2] = 'y';
    EXPECT_TRUE(htpasswd::parse("bob:" + y, "t")) << "2y";
}

TEST(Htpasswd, RefusesWeakHashesWithAHowToAndWithoutEchoingThem) {
    struct weak {
        std::string hash, says;
    };
    const std::vector<weak> cases = {
        {"hunter2-plain", "plain text"},
        {"abJnggxhB/yWI", "DES"},
        {"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "MD5"},
        {"$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.", "Apache MD5"},
        {"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"},
        {"$6$salt$"
         "IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.",
         "SHA-crypt"},
        {"$2a$05$" + bcrypt_hash().substr(7), "8-bit bug"},
        {"", "plain text"},
    };
    for (const auto& c : cases) {
        auto list = htpasswd::parse("alice:" + c.hash + "\n", "visitors.htpasswd");
        ASSERT_FALSE(list) << c.hash;
        const auto& m = list.error().message;
        EXPECT_NE(m.find(c.says), std::string::npos) << m;
        EXPECT_NE(m.find("visitors.htpasswd:1: user alice"), std::string::npos) << m;
        EXPECT_NE(m.find("mkpasswd -m yescrypt"), std::string::npos) << m;
        EXPECT_NE(m.find("htpasswd -nB"), std::string::npos) << m;
        if (!c.hash.empty()) {
            EXPECT_EQ(m.find(c.hash), std::string::npos) << "echoed: " << m;
        }
    }
}

TEST(Htpasswd, RefusesCostlyAndMalformedHashes) {
    const auto& y = yescrypt_hash();
    const auto tail = y.substr(6);  // "$salt$hash"
    // N = 2^18 with r = 32: 1 GiB per check.
    auto costly = htpasswd::parse("a:$y$jFT" + tail, "t");
    ASSERT_FALSE(costly);
    EXPECT_NE(costly.error().message.find("MiB"), std::string::npos) << costly.error().message;
    EXPECT_TRUE(htpasswd::parse("a:$y$jAT" + tail, "t")) << "128 x 32 x 2^13 = 32 MiB: the limit";
    EXPECT_FALSE(htpasswd::parse("a:$y$jBT" + tail, "t")) << "64 MiB";
    EXPECT_FALSE(htpasswd::parse("a:$y$j9T.0" + tail, "t")) << "extra lanes (p = 4)";
    EXPECT_FALSE(htpasswd::parse("a:$y$j9T3." + tail, "t")) << "t with g";
    EXPECT_TRUE(htpasswd::parse("a:$y$j9T/." + tail, "t")) << "t = 1";
    EXPECT_FALSE(htpasswd::parse("a:$y$j9T/0" + tail, "t")) << "t = 3";
    EXPECT_TRUE(htpasswd::parse("a:$2b$10$" + bcrypt_hash().substr(7), "t"));
    auto bcrypt11 = htpasswd::parse("a:$2b$11$" + bcrypt_hash().substr(7), "t");
    ASSERT_FALSE(bcrypt11);
    EXPECT_NE(bcrypt11.error().message.find("cost 11"), std::string::npos);
    for (std::string bad : std::vector<std::string>{
             "$y$", "$y$j9T", "$y$j9T$", "$y$j9T$salt", "$y$j9T$salt$short",
             "$y$j9T$sa;lt$" + y.substr(y.rfind('$') + 1), y + "x", y + " ", "$y$~9T" + tail,
             "$2b$05$short", bcrypt_hash() + "x", "$2b$5$" + bcrypt_hash().substr(7),
             "$2b$03$" + bcrypt_hash().substr(7), "$2b$05$" + std::string(53, '!')})
        EXPECT_FALSE(htpasswd::parse("a:" + bad, "t")) << bad;
    EXPECT_FALSE(htpasswd::from_entries({{"a", y + "\n"}}, "t")) << "a hash with a line break";
}

TEST(Htpasswd, RefusesBadLinesAndUsersAndReportsAllOfThem) {
    const auto& h = yescrypt_hash();
    auto list = htpasswd::parse(
        "no-colon-here\n"
        "bad user:" +
            h +
            "\n"
            ":" +
            h +
            "\n"
            "dup:" +
            h +
            "\n"
            "dup:" +
            h +
            "\n"
            "semi;colon:" +
            h +
            "\n"
            "ok:" +
            h + "\n",
        "f");
    ASSERT_FALSE(list);
    const auto& m = list.error().message;
    EXPECT_NE(m.find("f:1: expected user:hash"), std::string::npos) << m;
    EXPECT_NE(m.find("f:2:"), std::string::npos) << m;
    EXPECT_NE(m.find("f:3:"), std::string::npos) << m;
    EXPECT_NE(m.find("f:6:"), std::string::npos) << m;
    EXPECT_NE(m.find("dup is listed twice"), std::string::npos) << m;
    EXPECT_FALSE(htpasswd::parse("", "empty"));
    EXPECT_FALSE(htpasswd::parse("# only a comment\n", "empty"));
    EXPECT_FALSE(htpasswd::parse("a:" + h + ":extra\n", "t"));
    EXPECT_FALSE(check_user_name(std::string(65, 'a')));
    EXPECT_TRUE(check_user_name("alice.b_c@example.com+1"));
    EXPECT_FALSE(check_user_name("al:ice"));
    EXPECT_FALSE(check_user_name(std::string("al\0ice", 6)));
}

TEST(Htpasswd, LoadsAFile) {
    const auto path =
        std::filesystem::temp_directory_path() / ("htpasswd_test_" + std::to_string(::getpid()));
    std::ofstream(path) << "alice:" << yescrypt_hash() << "\n";
    auto list = htpasswd::load(path.string());
    std::filesystem::remove(path);
    ASSERT_TRUE(list) << list.error().message;
    EXPECT_TRUE(list->find("alice"));
    auto missing = htpasswd::load(path.string());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find(path.string()), std::string::npos);
}

TEST(PasswordCache, RemembersSuccessesOnlyAndForgetsAfterTheTtl) {
    auto list = htpasswd::parse("alice:" + yescrypt_hash(), "t");
    ASSERT_TRUE(list);
    password_cache cache(2, std::chrono::seconds(60));
    const std::chrono::system_clock::time_point t0{std::chrono::seconds(1'800'000'000)};
    EXPECT_TRUE(cache.verify(*list, "alice", "correct horse", t0));
    EXPECT_TRUE(cache.verify(*list, "alice", "correct horse", t0 + std::chrono::seconds(30)));
    EXPECT_EQ(cache.hashes_computed(), 1u);
    EXPECT_FALSE(cache.verify(*list, "alice", "wrong", t0));
    EXPECT_FALSE(cache.verify(*list, "alice", "wrong", t0));
    EXPECT_EQ(cache.hashes_computed(), 3u);  // failures are never cached
    EXPECT_TRUE(cache.verify(*list, "alice", "correct horse", t0 + std::chrono::seconds(61)));
    EXPECT_EQ(cache.hashes_computed(), 4u);  // expired: hashed again
    EXPECT_EQ(cache.size(), 1u);
    // A changed hash for the same user is not covered by the old entry.
    auto other = htpasswd::parse("alice:" + make_hash("$y$", 0, "new password"), "t");
    ASSERT_TRUE(other);
    EXPECT_FALSE(cache.verify(*other, "alice", "correct horse", t0 + std::chrono::seconds(62)));
}

}  // namespace
}  // namespace tunnel::relay
