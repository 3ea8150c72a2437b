// libFuzzer target: what a visitor (anyone on the internet) controls about
// visitor access control: the request target and header fields (Cookie,
// Authorization, the /_tunnel/login query), the claims of a token, and what a
// publisher controls: the tcpip-forward bind address and htpasswd lines.
//
// Input: byte 0 picks the mode (public, token, ip; basic is parsed but not
// checked: each check costs a libcrypt hash) and TLS / host routing; then
// "TARGET\nName: value\nName: value..." Contracts checked on every input: a
// decision is allowed or carries a 3xx/4xx/5xx status and a code; no decision
// message contains a visitor cookie or bearer value; after
// strip_visitor_credentials no visitor cookie is left and, when a bearer token
// admitted the visitor, no bearer Authorization field; a parsed bind address
// re-encodes to one that parses to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "relay/htpasswd.hpp"
#include "relay/publish_request.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_access.hpp"
#include "relay/visitor_token.hpp"

namespace {

using namespace tunnel::relay;

const token_verifier& verifier() {
    static const token_verifier v = [] {
        const auto path = std::filesystem::temp_directory_path() /
                          ("visitor_fuzz_secret_" + std::to_string(::getpid()));
        std::ofstream(path) << "fuzzing-secret-fuzzing-secret-32\n";
        auto loaded =
            token_verifier::load(visitor_verifier_options(path.string(), std::chrono::seconds(30)));
        std::filesystem::remove(path);
        if (!loaded) std::abort();
        return std::move(*loaded);
    }();
    return v;
}

bool is_authorization(std::string_view name) {
    constexpr std::string_view want = "authorization";
    if (name.size() != want.size()) return false;
    for (std::size_t i = 0; i < want.size(); ++i)
        if ((name[i] | 0x20) != want[i]) return false;
    return true;
}

// Messages quote at most 64 characters of any token part: a longer value found
// in a message is an echoed credential.
bool echoed(const std::string& message, std::string_view value) {
    return value.size() > 70 && message.find(value) != std::string::npos;
}

std::vector<http_field> fields_of(std::string_view text) {
    std::vector<http_field> out;
    while (!text.empty() && out.size() < 64) {
        const auto nl = text.find('\n');
        const auto line = text.substr(0, nl);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos)
            out.push_back(
                {std::string(line.substr(0, colon)),
                 std::string(line.substr(
                     colon + 1 < line.size() && line[colon + 1] == ' ' ? colon + 2 : colon + 1))});
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto flags = data[0];
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

    // Publisher-controlled strings.
    if (auto r = parse_publish_request(input)) {
        auto again = parse_publish_request(encode_publish_request(r->name, r->access));
        if (!again || again->name != r->name || again->access.has_value() != r->access.has_value())
            std::abort();
        if (r->access && !(*again->access == *r->access)) std::abort();
    }
    (void)htpasswd::parse(input, "fuzz");
    (void)ip_allow_list::parse_list(input);
    (void)map_visitor_claims(input, std::chrono::seconds(30), now);

    // Visitor-controlled request.
    const auto nl = input.find('\n');
    const std::string target(input.substr(0, nl));
    auto fields =
        fields_of(nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1));
    access_policy policy;
    switch (flags & 3) {
        case 0:
            policy.mode = access_mode::public_;
            break;
        case 1:
        case 3:
            policy.mode = access_mode::token;
            break;
        case 2:
            policy.mode = access_mode::ip;
            policy.allow_ips = *ip_allow_list::parse({"10.0.0.0/8", "2001:db8::/32"});
            break;
    }
    visitor_request req;
    req.tenant = "acme";
    req.name = "llm";
    req.method = (flags & 16) ? "POST" : "GET";
    req.target = target;
    req.fields = fields;
    req.peer_ip = (flags & 32) ? std::string_view("::ffff:10.1.2.3") : std::string_view(target);
    req.tls = (flags & 4) != 0;
    req.host_routed = (flags & 8) != 0;
    visitor_keys keys;
    keys.tokens = &verifier();
    const auto d = check_visitor(req, policy, keys, now);
    if (!d.allowed() && (d.status < 300 || d.status > 599 || d.code.empty())) std::abort();
    for (const auto& c : visitor_cookies(fields, req.tls))
        if (echoed(d.message, c)) std::abort();
    for (const auto& f : fields) {
        (void)parse_basic_authorization(f.value);
        if (auto b = parse_bearer_authorization(f.value))
            if (echoed(d.message, *b)) std::abort();
    }
    if (!d.allowed()) {
        if (render_visitor_response(d).find("\r\n\r\n") == std::string::npos) std::abort();
        return 0;
    }
    strip_visitor_credentials(fields, policy, d);
    if (!visitor_cookies(fields, true).empty() || !visitor_cookies(fields, false).empty())
        std::abort();
    if (d.credential == visitor_credential::bearer)
        for (const auto& f : fields)
            if (is_authorization(f.name) && parse_bearer_authorization(f.value)) std::abort();
    return 0;
}
