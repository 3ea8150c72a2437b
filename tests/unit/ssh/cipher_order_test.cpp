#include "ssh/cipher_order.hpp"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tunnel::ssh {
namespace {

std::vector<std::string> names(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string n; std::getline(in, n, ',');) out.push_back(n);
    return out;
}

TEST(CipherOrder, AesGcmFirstToTheServerOnlyWithAesInstructions) {
    const auto with = names(default_ciphers_to_server(true));
    const auto without = names(default_ciphers_to_server(false));
    ASSERT_FALSE(with.empty());
    EXPECT_EQ(with.front(), "aes128-gcm@openssh.com");
    EXPECT_EQ(without.front(), "chacha20-poly1305@openssh.com");
    // The same algorithms every way: only the preference changes.
    auto a = with, b = without;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
    EXPECT_EQ(default_ciphers_to_server(), default_ciphers_to_server(cpu_has_aes()));
}

// Downloads: sshd encrypts chacha20-poly1305 with OpenSSH's own poly1305,
// which costs the server ~0.3 s more CPU per 256 MiB than AES-GCM
// (docs/benchmarks.md); libssh decrypts either at the same cost.
TEST(CipherOrder, AesGcmFirstFromTheServerOnlyWithAesInstructions) {
    const auto with = names(default_ciphers_from_server(true));
    const auto without = names(default_ciphers_from_server(false));
    ASSERT_FALSE(with.empty());
    EXPECT_EQ(with.front(), "aes128-gcm@openssh.com");
    EXPECT_EQ(without.front(), "chacha20-poly1305@openssh.com");
    auto a = with, b = without, c = names(default_ciphers_to_server(true));
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::sort(c.begin(), c.end());
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, c);
    EXPECT_EQ(default_ciphers_from_server(), default_ciphers_from_server(cpu_has_aes()));
}

}  // namespace
}  // namespace tunnel::ssh
