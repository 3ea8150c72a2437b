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

TEST(CipherOrder, AesGcmFirstOnlyWithAesInstructions) {
    const auto with = names(default_ciphers(true));
    const auto without = names(default_ciphers(false));
    ASSERT_FALSE(with.empty());
    EXPECT_EQ(with.front(), "aes128-gcm@openssh.com");
    EXPECT_EQ(without.front(), "chacha20-poly1305@openssh.com");
    // The same algorithms either way: only the preference changes.
    auto a = with, b = without;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
    EXPECT_EQ(default_ciphers(), default_ciphers(cpu_has_aes()));
}

}  // namespace
}  // namespace tunnel::ssh
