// libFuzzer target: SFTP reply framing and every body decoder. Any input must
// give a value or an error, never a crash or an over-read (ASan/UBSan).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sftp/packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::sftp;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // The stream as the client sees it: frames back to back.
    std::string_view rest = in;
    while (true) {
        auto f = next_frame(rest);
        if (!f || !*f) break;
        auto body = (*f)->body;
        (void)parse_version(body);
        (void)parse_status(body);
        (void)parse_handle(body);
        (void)parse_data(body);
        (void)parse_name(body);
        (void)parse_attrs(body);
        (void)parse_statvfs(body);
        (void)parse_limits(body);
        rest.remove_prefix((*f)->size);
    }
    // And each decoder on the raw bytes.
    (void)parse_name(in);
    (void)parse_attrs(in);
    (void)parse_version(in);
    return 0;
}
