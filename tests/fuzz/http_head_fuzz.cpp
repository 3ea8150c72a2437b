// libFuzzer target: the relay's HTTP/1.1 head and message tracking
// (relay/http_tracker), the parser every public request and every origin
// response goes through. The first byte picks request or response and how the
// input is split into reads; the tracker must never crash, never claim more
// bytes than it was given, and once it reports a problem it stays failed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "relay/http_tracker.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::relay;
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    auto tracker = (mode & 1) ? http_tracker::for_response((mode & 2) != 0)
                              : http_tracker::for_request(4096, 1 << 20);
    const std::size_t step = 1 + (mode >> 2);  // reads of 1..64 bytes
    std::string_view pending;
    while (!in.empty() || !pending.empty()) {
        // Offer what is pending plus the next read, as the proxy does.
        std::size_t take = in.size() < step ? in.size() : step;
        std::string_view offered(pending.empty() ? in.data() : pending.data(),
                                 pending.size() + take);
        in.remove_prefix(take);
        std::size_t used = tracker.feed(offered);
        if (used > offered.size()) std::abort();
        if (tracker.problem() != http_problem::none) {
            if (tracker.feed("GET / HTTP/1.1\r\n\r\n") != 0) std::abort();
            return 0;
        }
        if (tracker.done()) return 0;
        pending = offered.substr(used);
        if (take == 0) break;  // nothing new to offer
    }
    tracker.feed_eof();
    if (tracker.header_done()) (void)tracker.head().find("host");
    return 0;
}
