// The reason phrase of an HTTP status (RFC 9110 section 15), for the status
// lines the relay and the admin listener write themselves.
#pragma once

#include <string_view>

namespace tunnel::core {

// "Not Found" for 404; "Error" for a status neither server sends.
[[nodiscard]] std::string_view http_reason(int status) noexcept;

}  // namespace tunnel::core
