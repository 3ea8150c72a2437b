// libFuzzer target: the SOCKS4/4a/5 server handshake. Any byte stream, cut
// into segments anywhere, must end in need_more, ready or failed: never a
// crash, an over-read or unbounded buffering. The first input byte picks the
// segment length and whether credentials are required.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "forward/socks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::forward;
    if (size == 0) return 0;
    const std::size_t segment = 1 + (data[0] & 0x3f);
    const bool with_auth = (data[0] & 0x40) != 0;
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

    socks_handshake hs(with_auth
                           ? std::optional<socks_credentials>(socks_credentials{"user", "pass"})
                           : std::nullopt);
    while (!in.empty()) {
        auto n = std::min(segment, in.size());
        auto step = hs.feed(in.substr(0, n));
        in.remove_prefix(n);
        if (step.reply.size() > 16) std::abort();  // replies are small fixed forms
        if (step.state == socks_handshake::status::failed) break;
        if (step.state == socks_handshake::status::ready) {
            const auto& t = hs.target();
            if (t.port == 0 || t.host.empty() || t.host.size() > 255) std::abort();
            (void)hs.final_reply(socks_reply::succeeded);
            (void)hs.take_leftover();
            break;
        }
    }
    return 0;
}
