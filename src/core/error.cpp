#include "core/error.hpp"

namespace tunnel::core {

std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::invalid_argument:
            return "invalid_argument";
        case errc::not_found:
            return "not_found";
        case errc::permission_denied:
            return "permission_denied";
        case errc::io_error:
            return "io_error";
        case errc::timeout:
            return "timeout";
        case errc::connection_failed:
            return "connection_failed";
        case errc::protocol_error:
            return "protocol_error";
        case errc::host_key_unknown:
            return "host_key_unknown";
        case errc::host_key_changed:
            return "host_key_changed";
        case errc::auth_failed:
            return "auth_failed";
        case errc::auth_unavailable:
            return "auth_unavailable";
        case errc::channel_failed:
            return "channel_failed";
        case errc::circuit_open:
            return "circuit_open";
        case errc::denied:
            return "denied";
        case errc::resource_exhausted:
            return "resource_exhausted";
        case errc::cancelled:
            return "cancelled";
        case errc::disconnected:
            return "disconnected";
    }
    return "unknown";
}

}  // namespace tunnel::core
