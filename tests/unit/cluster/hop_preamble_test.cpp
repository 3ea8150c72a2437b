// The proxy hop's preamble (relay/hop_preamble.hpp): signing, and every
// reason verify() refuses one.
#include "relay/hop_preamble.hpp"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

constexpr std::int64_t now = 1'800'000'000'000;  // a fixed clock
const std::string secret = "0123456789abcdef0123456789abcdef-cluster";

hop_preamble sample() {
    return hop_preamble{"relay-b", now, "0011223344556677", "acme", "web", "192.0.2.7", true};
}

// The line without its CRLF, as the receiver passes it.
std::string body_of(const std::string& line) {
    EXPECT_GE(line.size(), 2u);
    EXPECT_EQ(line.substr(line.size() - 2), "\r\n");
    return line.substr(0, line.size() - 2);
}

TEST(HopPreamble, SignedLineVerifies) {
    hop_signer keys(secret);
    auto line = keys.sign(sample());
    ASSERT_TRUE(line) << line.error().message;
    EXPECT_EQ(line->rfind("TUNNEL-HOP/2 relay-b 1800000000000 0011223344556677 acme web "
                          "192.0.2.7 https ",
                          0),
              0u)
        << *line;
    EXPECT_LE(line->size(), hop_signer::max_line);
    hop_replay_cache seen;
    auto p = keys.verify(body_of(*line), now + 1000, seen);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->node, "relay-b");
    EXPECT_EQ(p->tenant, "acme");
    EXPECT_EQ(p->name, "web");
    EXPECT_EQ(p->client_ip, "192.0.2.7");
    EXPECT_TRUE(p->https);
    EXPECT_EQ(p->nonce, "0011223344556677");
    EXPECT_EQ(p->version, 2);
}

TEST(HopPreamble, VersionOneStillVerifiesAndSaysSo) {
    hop_signer keys(secret);
    auto s = sample();
    s.version = 1;
    auto line = keys.sign(s);
    ASSERT_TRUE(line) << line.error().message;
    EXPECT_EQ(line->rfind("TUNNEL-HOP/1 relay-b ", 0), 0u) << *line;
    hop_replay_cache seen;
    auto p = keys.verify(body_of(*line), now, seen);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->version, 1);
    // The version is signed: a v1 line relabelled v2 fails its HMAC.
    std::string relabelled = body_of(*line);
    relabelled[11] = '2';
    hop_replay_cache fresh;
    auto forged = keys.verify(relabelled, now, fresh);
    ASSERT_FALSE(forged);
    EXPECT_EQ(forged.error().code, core::errc::auth_failed);
    s.version = 3;
    EXPECT_FALSE(keys.sign(s));
}

TEST(HopPreamble, IPv6CallerAndPlainHttp) {
    hop_signer keys(secret);
    auto s = sample();
    s.client_ip = "2001:db8::1";
    s.https = false;
    auto line = keys.sign(s);
    ASSERT_TRUE(line) << line.error().message;
    hop_replay_cache seen;
    auto p = keys.verify(body_of(*line), now, seen);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->client_ip, "2001:db8::1");
    EXPECT_FALSE(p->https);
}

TEST(HopPreamble, AnotherSecretIsAWrongHmac) {
    hop_signer keys(secret);
    hop_signer other("another-secret-of-at-least-32-bytes!!");
    auto line = other.sign(sample());
    ASSERT_TRUE(line);
    hop_replay_cache seen;
    auto p = keys.verify(body_of(*line), now, seen);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, core::errc::auth_failed);
    EXPECT_NE(p.error().message.find("wrong HMAC"), std::string::npos) << p.error().message;
    // Neither secret nor HMAC in the message.
    EXPECT_EQ(p.error().message.find(secret), std::string::npos);
    EXPECT_EQ(p.error().message.find(line->substr(line->size() - 66, 64)), std::string::npos);
    EXPECT_EQ(seen.size(), 0u);  // an unauthenticated nonce is not remembered
}

TEST(HopPreamble, AnyChangedFieldBreaksTheHmac) {
    hop_signer keys(secret);
    auto line = body_of(*keys.sign(sample()));
    for (auto [from, to] :
         std::vector<std::pair<std::string, std::string>>{{" web ", " api "},
                                                          {"192.0.2.7", "192.0.2.8"},
                                                          {" https ", " http "},
                                                          {"relay-b", "relay-c"},
                                                          {"1800000000000", "1800000000001"}}) {
        auto changed = line;
        changed.replace(changed.find(from), from.size(), to);
        hop_replay_cache seen;
        auto p = keys.verify(changed, now, seen);
        ASSERT_FALSE(p) << from;
        EXPECT_EQ(p.error().code, core::errc::auth_failed) << from << ": " << p.error().message;
    }
}

TEST(HopPreamble, StaleOrFutureTimesAreRefused) {
    hop_signer keys(secret);
    auto line = body_of(*keys.sign(sample()));
    for (std::int64_t skew : {31'000, -31'000, 3'600'000}) {
        hop_replay_cache seen;
        auto p = keys.verify(line, now + skew, seen);
        ASSERT_FALSE(p) << skew;
        EXPECT_EQ(p.error().code, core::errc::denied) << p.error().message;
        EXPECT_NE(p.error().message.find("more than 30000 ms"), std::string::npos)
            << p.error().message;
    }
    hop_replay_cache seen;
    EXPECT_TRUE(keys.verify(line, now + 29'000, seen));
}

TEST(HopPreamble, AReplayedNonceIsRefusedWithinTheWindow) {
    hop_signer keys(secret);
    auto line = body_of(*keys.sign(sample()));
    hop_replay_cache seen;
    ASSERT_TRUE(keys.verify(line, now, seen));
    auto again = keys.verify(line, now + 10, seen);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, core::errc::denied);
    EXPECT_NE(again.error().message.find("used already"), std::string::npos)
        << again.error().message;
    // Another nonce from the same sender is fine.
    auto s = sample();
    s.nonce = "8899aabbccddeeff";
    EXPECT_TRUE(keys.verify(body_of(*keys.sign(s)), now + 10, seen));
}

TEST(HopPreamble, TheReplayCacheForgetsExpiredNoncesAndIsBounded) {
    hop_replay_cache seen(2);
    bool full = false;
    EXPECT_TRUE(seen.insert("a", 100, 0, full));
    EXPECT_TRUE(seen.insert("b", 200, 0, full));
    EXPECT_FALSE(seen.insert("c", 300, 50, full));
    EXPECT_TRUE(full);
    EXPECT_FALSE(seen.insert("a", 300, 50, full));  // still remembered
    EXPECT_FALSE(full);
    EXPECT_TRUE(seen.insert("c", 300, 100, full));  // "a" expired at 100
    EXPECT_EQ(seen.size(), 2u);
}

// Every hop request has a preamble of its own: the default cache holds a
// window's worth of a busy cluster (relay_cluster_bench at ~12,000 hop
// requests a second filled the old 100,000 in 8 s, and A refused hops).
TEST(HopPreamble, TheDefaultReplayCacheHoldsThirtySecondsOfABusyHop) {
    hop_replay_cache seen;
    bool full = false;
    int refused = 0;
    for (std::uint64_t i = 0; i < 400'000; ++i)
        if (!seen.insert(fmt::format("{:016x}", i * 2654435761u), 30'000, 0, full)) ++refused;
    EXPECT_EQ(refused, 0);
    EXPECT_EQ(seen.size(), 400'000u);
    EXPECT_FALSE(
        seen.insert(fmt::format("{:016x}", std::uint64_t{7} * 2654435761u), 30'000, 10, full));
    EXPECT_FALSE(full);  // a replay, not a full cache
}

TEST(HopPreamble, MalformedLinesSayWhatIsWrong) {
    hop_signer keys(secret);
    const std::string good = body_of(*keys.sign(sample()));
    const std::string mac = good.substr(good.size() - 64);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"GET / HTTP/1.1", "does not start with TUNNEL-HOP/2 or TUNNEL-HOP/1"},
        {"TUNNEL-HOP/3 relay-b", "does not start with"},
        {"", "does not start with"},
        {"TUNNEL-HOP/1 relay-b", "space-separated fields"},
        {good + " extra", "space-separated fields"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 0011223344556677 acme  web 192.0.2.7 https",
         "an empty field"},
        {"TUNNEL-HOP/1 Relay-B 1800000000000 0011223344556677 acme web 192.0.2.7 https " + mac,
         "not a node name"},
        {"TUNNEL-HOP/1 relay-b 18e12 0011223344556677 acme web 192.0.2.7 https " + mac,
         "milliseconds"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 00112233 acme web 192.0.2.7 https " + mac, "nonce"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 0011223344556677 ACME web 192.0.2.7 https " + mac,
         "tenant"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 0011223344556677 acme w/b 192.0.2.7 https " + mac,
         "name"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 0011223344556677 acme web evil.example https " + mac,
         "not an IP address"},
        {"TUNNEL-HOP/1 relay-b 1800000000000 0011223344556677 acme web 192.0.2.7 ftp " + mac,
         "neither http nor https"},
        {good.substr(0, good.size() - 1) + "G", "64 lowercase hex"},
        {std::string(600, 'x'), "over 512"},
    };
    for (const auto& [line, expected] : cases) {
        hop_replay_cache seen;
        auto p = keys.verify(line, now, seen);
        ASSERT_FALSE(p) << line;
        EXPECT_EQ(p.error().code, core::errc::protocol_error) << line;
        EXPECT_NE(p.error().message.find(expected), std::string::npos)
            << line << " -> " << p.error().message;
    }
}

TEST(HopPreamble, SignRefusesFieldsItCouldNotVerify) {
    hop_signer keys(secret);
    auto s = sample();
    s.client_ip = "not an ip";
    EXPECT_FALSE(keys.sign(s));
    s = sample();
    s.name = "a b";
    EXPECT_FALSE(keys.sign(s));
}

// The HMAC is RFC 2104's HMAC-SHA256 (relays of other versions check it):
// known answers from Python's hmac module, for a short secret, one longer
// than SHA-256's 64-byte block (hashed first), and an empty one.
TEST(HopPreamble, TheHmacIsStandardHmacSha256) {
    const hop_preamble p{
        "relay-b", 1'765'000'000'000, "00112233aabbccdd", "acme", "web", "192.0.2.7", true};
    const std::string unsigned_line =
        "TUNNEL-HOP/2 relay-b 1765000000000 00112233aabbccdd acme web 192.0.2.7 https ";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {std::string(32, 'k'), "a1d3b85ecf312bbfff8b85bd765569e817a9394da061aa9c81a94b08b4bf2ba6"},
        {std::string(100, 'k'), "1249c76219dc7eca8e6b73419d1d4a06081e66056a55a4af80caaccb26fcc406"},
        {std::string(), "b291b65bac540da551db4ef96e8ee748f52ce89b52a2177971c1ca7d3cad841c"},
    };
    for (const auto& [key, mac] : cases) {
        hop_signer keys(key);
        auto line = keys.sign(p);
        ASSERT_TRUE(line) << line.error().message;
        EXPECT_EQ(*line, unsigned_line + mac + "\r\n") << key.size() << "-byte secret";
    }
}

// Signing from several threads at once (the workers do) gives each the
// right MAC: each thread has its own scratch state.
TEST(HopPreamble, SigningFromManyThreadsAgrees) {
    hop_signer keys(secret);
    const auto expected = keys.sign(sample());
    ASSERT_TRUE(expected);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                auto line = keys.sign(sample());
                if (!line || *line != *expected) ++wrong;
                hop_replay_cache seen;
                if (line && !keys.verify(body_of(*line), now, seen)) ++wrong;
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(HopPreamble, NoncesAreSixteenHexDigitsAndNeverRepeat) {
    const auto a = new_hop_nonce();
    EXPECT_EQ(a.size(), 16u);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
    std::set<std::string> seen{a};
    for (int i = 0; i < 100'000; ++i) EXPECT_TRUE(seen.insert(new_hop_nonce()).second);
}

}  // namespace
}  // namespace tunnel::relay
