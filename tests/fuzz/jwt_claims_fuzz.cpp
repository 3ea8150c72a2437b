// libFuzzer target: the JWT claims -> tenant_policy mapping
// (relay::map_claims), the part of token checking that reads attacker-chosen
// JSON after a signature verified (or, for a leaked key, at all). Any input
// must map or be refused with a reason: never crash, and a policy always
// satisfies the contract (valid tenant, non-empty valid globs, limits > 0).
// The first input byte picks whether aud/iss are required.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "relay/public_route.hpp"
#include "relay/token_verifier.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::relay;
    if (size == 0) return 0;
    claim_rules rules;
    if (data[0] & 1) rules.audience = "relay";
    if (data[0] & 2) rules.issuer = "issuer";
    rules.leeway = std::chrono::seconds(data[0] >> 2);
    std::string_view claims(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

    auto p = map_claims(claims, rules, now);
    if (p) {
        if (!valid_label(p->tenant)) std::abort();
        if (p->allow.empty()) std::abort();
        for (const auto& g : p->allow)
            if (!valid_name_glob(g)) std::abort();
        if (p->max_streams == 0 || !(p->rps > 0)) std::abort();
        if (p->expires + rules.leeway <= now) std::abort();
        (void)may_publish(*p, "llm");
    } else if (p.error().message.empty() || to_string(p.error().code).empty()) {
        std::abort();
    }
    return 0;
}
