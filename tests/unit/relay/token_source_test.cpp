// relay/token_source: where tunnel connect's token comes from, when it is
// due for renewal, and how a token command's output is checked.
#include "relay/token_source.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/encoding.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

long long now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// An unsigned JWT-shaped token with these claims (the client never verifies).
std::string token_with(const std::string& claims) {
    return core::base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
           core::base64url_encode(claims) + ".c2ln";
}

token_source_options from(std::string file, std::string command = {},
                          std::chrono::milliseconds timeout = 30s) {
    token_source_options o;
    o.file = std::move(file);
    o.command = std::move(command);
    o.command_timeout = timeout;
    return o;
}

struct temp_file {
    std::string path =
        fmt::format("{}/token-source-{}-{}", std::filesystem::temp_directory_path().string(),
                    ::getpid(), reinterpret_cast<std::uintptr_t>(this));
    ~temp_file() { std::remove(path.c_str()); }
    void write(const std::string& text) const {
        std::ofstream(path + ".new") << text;
        std::rename((path + ".new").c_str(), path.c_str());
    }
};

TEST(TokenSource, ExactlyOneSource) {
    EXPECT_FALSE(token_source::create({}));
    EXPECT_FALSE(token_source::create(from("f", "c")));
    EXPECT_TRUE(token_source::create(from("f")));
    EXPECT_TRUE(token_source::create(from("", "c")));
    EXPECT_FALSE(token_source::create(from("", "c", 0ms)));
}

TEST(TokenSource, ExpiryAndRenewalMarginComeFromTheClaims) {
    const auto now = now_s();
    const auto t = token_with(fmt::format(R"({{"sub":"acme","iat":{},"exp":{}}})", now, now + 400));
    auto exp = token_expiry(t);
    ASSERT_TRUE(exp);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(exp->time_since_epoch()).count(),
              now + 400);
    EXPECT_EQ(renewal_margin(t), 100s);  // a quarter of the lifetime
    EXPECT_EQ(renewal_margin(token_with(fmt::format(R"({{"iat":{},"exp":{}}})", now, now + 2))),
              1s);  // at least 1 s
    EXPECT_EQ(renewal_margin(token_with(fmt::format(R"({{"iat":{},"exp":{}}})", now, now + 86400))),
              300s);  // at most 5 min
    EXPECT_FALSE(token_expiry("not.a-token"));
    EXPECT_FALSE(token_expiry(token_with(R"({"sub":"acme"})")));
    EXPECT_FALSE(token_expiry(token_with(R"({"exp":"tomorrow"})")));
    EXPECT_EQ(renewal_margin(token_with(R"({"sub":"acme"})")), 0s);
}

TEST(TokenSource, AFileIsReadAgainWhenItChanges) {
    temp_file f;
    const auto far = now_s() + 3600;
    const auto a = token_with(fmt::format(R"({{"sub":"acme","exp":{}}})", far));
    const auto b = token_with(fmt::format(R"({{"sub":"acme","exp":{}}})", far + 1));
    f.write(a + "\n");
    auto src = token_source::create(from(f.path));
    ASSERT_TRUE(src);
    ASSERT_EQ(src->current().value_or(""), a);
    EXPECT_FALSE(src->file_changed());
    std::this_thread::sleep_for(10ms);  // a different mtime even on coarse clocks
    f.write(b + "\n");
    EXPECT_TRUE(src->file_changed());
    EXPECT_EQ(src->current().value_or(""), b);
    EXPECT_FALSE(src->file_changed());
    EXPECT_EQ(src->last(), b);
}

TEST(TokenSource, ATokenForAnotherTenantIsRefusedAndTheOldOneStays) {
    temp_file f;
    const auto far = now_s() + 3600;
    const auto acme = token_with(fmt::format(R"({{"sub":"acme","exp":{}}})", far));
    f.write(acme);
    auto src = token_source::create(from(f.path));
    ASSERT_TRUE(src);
    ASSERT_EQ(src->current().value_or(""), acme);
    EXPECT_EQ(src->tenant(), "acme");
    std::this_thread::sleep_for(10ms);
    f.write(token_with(fmt::format(R"({{"sub":"other","exp":{}}})", far)));
    auto refused = src->current();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("tenant 'other', not 'acme'"), std::string::npos)
        << refused.error().message;
    EXPECT_EQ(src->last(), acme);
    EXPECT_EQ(src->current().value_or(""), acme)
        << "the refused file is not read again until it changes";
}

TEST(TokenSource, ATokenAboutToExpireIsFetchedAgain) {
    temp_file f;
    const auto soon = token_with(fmt::format(R"({{"sub":"acme","exp":{}}})", now_s() + 2));
    f.write(soon);
    auto src = token_source::create(from(f.path));
    ASSERT_TRUE(src);
    ASSERT_TRUE(src->current());
    // Within the margin: read again (the same file here, so the same token;
    // what matters is that a command would run again).
    std::filesystem::remove(f.path);
    auto again = src->current(10s);
    ASSERT_FALSE(again) << "expected a re-read of the missing file";
    EXPECT_NE(again.error().message.find(f.path), std::string::npos) << again.error().message;
}

TEST(TokenSource, ACommandMustPrintOneWordAndExitZero) {
    auto ok = run_token_command("printf '  abc.def.ghi\\n'", 5s);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(*ok, "abc.def.ghi");

    auto status = run_token_command("echo secret-looking-output; exit 4", 5s);
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message.find("exited with status 4"), std::string::npos);
    EXPECT_EQ(status.error().message.find("secret-looking-output"), std::string::npos)
        << "the output is never repeated: " << status.error().message;

    auto missing = run_token_command("/nonexistent/token-helper", 5s);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("127"), std::string::npos) << missing.error().message;

    EXPECT_FALSE(run_token_command("true", 5s));            // nothing printed
    EXPECT_FALSE(run_token_command("echo two words", 5s));  // more than one word
    EXPECT_FALSE(run_token_command("head -c 20000 /dev/zero | tr '\\0' a", 5s));  // too long

    const auto start = std::chrono::steady_clock::now();
    auto slow = run_token_command("sleep 10", 200ms);
    ASSERT_FALSE(slow);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "killed at the timeout";
    EXPECT_NE(slow.error().message.find("no token within 200 ms"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::relay
