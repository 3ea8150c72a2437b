// OpenSSL's one-time costs, paid where nobody waits for them.
#pragma once

namespace tunnel::ssh {

// Seeds OpenSSL's random generator and fetches the algorithms a key exchange
// uses (~1.3 ms of CPU on the first call, nothing later). session::connect
// calls it after sending its banner, while the server is still starting up
// (sshd forks and re-executes itself per connection), instead of after the
// server's banner arrived, when libssh would pay it on the way to KEXINIT.
void warm_up_crypto() noexcept;

// Tells OpenSSL not to free its tables in an atexit handler (~0.4 ms at the
// exit of every command; the process is ending anyway). Call it first in
// main(), before anything else initialises OpenSSL.
void skip_crypto_cleanup_at_exit() noexcept;

}  // namespace tunnel::ssh
