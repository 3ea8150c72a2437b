// Move-only owners of libjwt's C handles (STYLE 4): a decoded or built token
// and a string libjwt allocated (jwt_encode_str, jwt_get_grants_json).
#pragma once

#include <cstdlib>
#include <memory>

#include <jwt.h>

namespace tunnel::relay {

struct jwt_deleter {
    void operator()(jwt_t* p) const noexcept { jwt_free(p); }
};
using jwt_handle = std::unique_ptr<jwt_t, jwt_deleter>;

struct jwt_string_deleter {
    void operator()(char* p) const noexcept { std::free(p); }
};
using jwt_string = std::unique_ptr<char, jwt_string_deleter>;

}  // namespace tunnel::relay
