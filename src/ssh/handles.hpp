// Move-only RAII owners for every libssh handle (STYLE 4).
#pragma once

#include <memory>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

namespace tunnel::ssh {

namespace detail {
struct session_deleter {
    void operator()(ssh_session s) const noexcept { ssh_free(s); }
};
struct channel_deleter {
    void operator()(ssh_channel c) const noexcept { ssh_channel_free(c); }
};
struct key_deleter {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
struct event_deleter {
    void operator()(ssh_event e) const noexcept { ssh_event_free(e); }
};
struct string_deleter {
    void operator()(char* p) const noexcept { ssh_string_free_char(p); }
};
struct hash_deleter {
    void operator()(unsigned char* p) const noexcept { ssh_clean_pubkey_hash(&p); }
};
}  // namespace detail

using session_handle = std::unique_ptr<ssh_session_struct, detail::session_deleter>;
using channel_handle = std::unique_ptr<ssh_channel_struct, detail::channel_deleter>;
using key_handle = std::unique_ptr<ssh_key_struct, detail::key_deleter>;
using event_handle = std::unique_ptr<ssh_event_struct, detail::event_deleter>;
using ssh_string_handle = std::unique_ptr<char, detail::string_deleter>;
using hash_handle = std::unique_ptr<unsigned char, detail::hash_deleter>;

}  // namespace tunnel::ssh
