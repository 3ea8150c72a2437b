// libFuzzer target: public routing (relay/public_route). Any Host header and
// request target must route, be refused or be "no route": never crash, and
// a route found always carries valid labels and an origin-form target.
// Input: domain \n host \n target (missing parts are empty).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "relay/public_route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::relay;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto next = [&in] {
        auto nl = in.find('\n');
        auto part = in.substr(0, nl);
        in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
        return part;
    };
    auto domain = next();
    auto host = next();
    auto target = next();

    auto r = route_request(host, target, domain);
    if (r) {
        if (!valid_label(r->tenant) || !valid_label(r->name)) std::abort();
        if (!r->by_host && (r->target.empty() || r->target.front() != '/')) std::abort();
        if (!r->by_host && r->target.size() > target.size()) std::abort();
    } else if (r.error().message.empty()) {
        std::abort();
    }
    if (auto p = route_by_path(target); p && *p) {
        // Path routing strips exactly "/t/<tenant>/<name>".
        if ((*p)->target.size() + 4 + (*p)->tenant.size() + (*p)->name.size() < target.size())
            std::abort();
    }
    (void)normalize_label(host, "fuzz");
    return 0;
}
