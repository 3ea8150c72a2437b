// libFuzzer target: the ClientHello/SNI parser (relay/client_hello). Any
// bytes a caller sends first must parse as need-more, not-TLS, malformed or a
// ClientHello: never crash, never read past the input, and a name found is a
// lower-case host name that SNI routing (route_by_host) takes or refuses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "relay/client_hello.hpp"
#include "relay/public_route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::relay;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto h = parse_client_hello(in);
    switch (h.result) {
        case client_hello::status::need_more:
            // Only a prefix of one record, and it says how much it needs.
            if (h.needed <= in.size() && in.size() >= tls_record_header) std::abort();
            if (h.needed > max_client_hello_bytes) std::abort();
            break;
        case client_hello::status::not_tls:
            if (in.empty() || static_cast<unsigned char>(in[0]) == 0x16) std::abort();
            break;
        case client_hello::status::malformed:
            if (h.problem.empty()) std::abort();
            break;
        case client_hello::status::ok:
            if (h.server_name.size() > 253) std::abort();
            for (char c : h.server_name)
                if (c >= 'A' && c <= 'Z') std::abort();
            if (auto r = route_by_host(h.server_name, "tcp.example.com", "/"); r && *r)
                if (!valid_label((*r)->tenant) || !valid_label((*r)->name)) std::abort();
            break;
    }
    // Every prefix of the input is a prefix of the same record: it never
    // parses as something the whole input is not.
    if (size > 0) {
        const auto shorter = parse_client_hello(in.substr(0, size / 2));
        if (shorter.result == client_hello::status::ok && h.result != client_hello::status::ok)
            std::abort();
    }
    return 0;
}
