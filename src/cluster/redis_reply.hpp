// A Redis reply as a value of ours (docs/cluster.md): what hiredis hands a
// callback is copied into this before the callback returns, so no redisReply
// pointer ever leaves the adapter (redis_connection.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tunnel::cluster {

struct reply {
    enum class kind { nil, status, error, integer, string, array };

    kind type = kind::nil;
    std::string text;             // status, error, string
    long long integer = 0;        // integer
    std::vector<reply> elements;  // array

    [[nodiscard]] bool is_nil() const noexcept { return type == kind::nil; }
    [[nodiscard]] bool is_error() const noexcept { return type == kind::error; }
    [[nodiscard]] bool is_string() const noexcept { return type == kind::string; }
    [[nodiscard]] bool is_integer() const noexcept { return type == kind::integer; }
    [[nodiscard]] bool is_array() const noexcept { return type == kind::array; }
    // A status reply "OK".
    [[nodiscard]] bool is_ok() const noexcept { return type == kind::status && text == "OK"; }
};

// "nil", "status OK", "error ERR ...", "integer 3", "string(5)", "array(2)":
// for messages; string contents are not included (they may be secrets).
[[nodiscard]] std::string describe(const reply& r);

}  // namespace tunnel::cluster
