// A certificate authority made with `ssh-keygen -s`, for certificate tests:
//
//   auto ca = ssh_ca::create(dir, "ca");
//   auto key = generate_ssh_key(dir, "alice");                 // dir/alice, dir/alice.pub
//   auto cert = ca->sign(key->pub_path(), cert_request().names("root"));  // dir/alice-cert.pub
#pragma once

#include <string>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct ssh_key_files {
    std::string path;  // the private key (mode 0600)
    [[nodiscard]] std::string pub_path() const { return path + ".pub"; }
    [[nodiscard]] std::string cert_path() const { return path + "-cert.pub"; }
};

// `ssh-keygen -t TYPE -N "" -f DIR/NAME`.
[[nodiscard]] core::result<ssh_key_files> generate_ssh_key(const temp_dir& dir,
                                                           const std::string& name,
                                                           const std::string& type = "ed25519");

struct cert_request {
    std::string identity = "tunnel-test";  // -I
    std::string principals;                // -n (comma-separated); empty: none
    std::string validity = "-5m:+1h";      // -V
    bool host = false;                     // -h
    std::string output;                    // where to put it; empty: ssh-keygen's KEY-cert.pub

    cert_request& id(std::string v) {
        identity = std::move(v);
        return *this;
    }
    cert_request& names(std::string v) {
        principals = std::move(v);
        return *this;
    }
    cert_request& valid(std::string v) {
        validity = std::move(v);
        return *this;
    }
    cert_request& for_host() {
        host = true;
        return *this;
    }
    // Must end in "-cert.pub".
    cert_request& into(std::string path) {
        output = std::move(path);
        return *this;
    }
};

class ssh_ca {
  public:
    [[nodiscard]] static core::result<ssh_ca> create(const temp_dir& dir, const std::string& name,
                                                     const std::string& type = "ed25519");

    [[nodiscard]] const ssh_key_files& key() const noexcept { return key_; }
    // `ssh-ed25519 AAAA...` (no comment).
    [[nodiscard]] const std::string& public_key() const noexcept { return public_key_; }

    // Signs the public key at `pub_path`; returns the certificate's path.
    [[nodiscard]] core::result<std::string> sign(const std::string& pub_path,
                                                 const cert_request& request) const;

  private:
    ssh_ca(ssh_key_files key, std::string public_key)
        : key_(std::move(key)), public_key_(std::move(public_key)) {}
    ssh_key_files key_;
    std::string public_key_;
};

}  // namespace tunnel::test
