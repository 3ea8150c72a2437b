// Host certificates (issue 14): a real sshd with `HostCertificate` signed by
// `ssh-keygen -s -h`, and a known_hosts that has only an `@cert-authority`
// line for its CA. `tunnel exec` accepts the server when the certificate is
// valid for the host it dialled and refuses it (strict checking stays on)
// when it names another host, has expired or comes from another CA. OpenSSH's
// `ssh` is run on the same files as a reference for each case.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/ssh_ca.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

class HostCertificate : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-hostcert");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        auto ca = ssh_ca::create(*dir_, "host_ca");
        ASSERT_TRUE(ca) << ca.error().message;
        ca_.emplace(std::move(*ca));
        // The fixture's host key is the same for every sshd of this process:
        // learn it from a first server, certify it, start the real one.
        auto probe = sshd_fixture::start();
        ASSERT_TRUE(probe) << probe.error().message;
        host_pub_ = dir_->file("host_ed25519.pub");
        ASSERT_TRUE(write_text_file(host_pub_, probe->host_pubkey() + "\n"));
    }

    // Starts sshd presenting a certificate for its host key signed by `ca`.
    void start_with_certificate(const ssh_ca& ca, cert_request request) {
        request.for_host().into(dir_->file("host_ed25519-cert.pub"));
        auto cert = ca.sign(host_pub_, request);
        ASSERT_TRUE(cert) << cert.error().message;
        sshd_options o;
        o.extra_config = {"HostCertificate " + *cert};
        auto s = sshd_fixture::start(o);
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
    }

    // A known_hosts with nothing but `@cert-authority PATTERN <ca>`.
    std::string known_hosts_trusting(const ssh_ca& ca, const std::string& pattern = "*") {
        const auto path = dir_->file("known_hosts");
        EXPECT_TRUE(write_text_file(
            path, "@cert-authority " + pattern + " " + ca.public_key() + " test host CA\n"));
        return path;
    }

    std::vector<std::string> common(const std::string& known_hosts) const {
        return {"-F", "/dev/null",
                "-p", std::to_string(sshd_->port()),
                "-i", sshd_->client_key_path(),
                "-o", "UserKnownHostsFile=" + known_hosts,
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes"};
    }

    run_result tunnel_exec(const std::string& known_hosts) const {
        std::vector<std::string> args = {"exec"};
        auto c = common(known_hosts);
        args.insert(args.end(), c.begin(), c.end());
        args.insert(args.end(), {"root@127.0.0.1", "--", "echo", "trusted-by-ca"});
        return run_tunnel(args);
    }

    run_result openssh(const std::string& known_hosts) const {
        std::vector<std::string> args = {"ssh"};
        auto c = common(known_hosts);
        args.insert(args.end(), c.begin(), c.end());
        args.insert(args.end(), {"root@127.0.0.1", "echo", "trusted-by-ca"});
        run_options ro;
        ro.timeout = std::chrono::seconds(20);
        return run(args, ro);
    }

    std::optional<temp_dir> dir_;
    std::optional<ssh_ca> ca_;
    std::string host_pub_;
    std::optional<sshd_fixture> sshd_;
};

TEST_F(HostCertificate, AcceptedThroughCertAuthorityWithoutAPlainEntry) {
    start_with_certificate(*ca_, cert_request().id("test host").names("127.0.0.1"));
    const auto kh = known_hosts_trusting(*ca_, "[127.0.0.1]:*");
    auto r = tunnel_exec(kh);
    ASSERT_TRUE(r.ok()) << r.describe() << "\nsshd log:\n" << sshd_->log();
    EXPECT_EQ(r.out, "trusted-by-ca\n");
    // Nothing was added to known_hosts: the CA vouches for the key.
    auto text = read_text_file(kh);
    ASSERT_TRUE(text);
    EXPECT_EQ(text->find("ssh-ed25519 AAAA"), text->rfind("ssh-ed25519 AAAA")) << *text;

    auto reference = openssh(kh);
    EXPECT_TRUE(reference.ok()) << reference.describe();

    // Control: without the @cert-authority line the same server is unknown.
    const auto empty = dir_->file("empty_known_hosts");
    ASSERT_TRUE(write_text_file(empty, ""));
    auto unknown = tunnel_exec(empty);
    EXPECT_EQ(unknown.exit_code, 255) << unknown.describe();
    EXPECT_NE(unknown.err.find("is not known"), std::string::npos) << unknown.err;
}

// Through ProxyJump the target's certificate is fetched over a second channel
// of the jump session (here the jump host is the same sshd; both hops are
// trusted only through the CA).
TEST_F(HostCertificate, AcceptedThroughAJumpHostToo) {
    start_with_certificate(*ca_, cert_request().names("127.0.0.1"));
    const auto kh = known_hosts_trusting(*ca_);
    const auto config = dir_->file("jump_config");
    const auto port = std::to_string(sshd_->port());
    ASSERT_TRUE(write_text_file(config, "Host target\n  HostName 127.0.0.1\n  Port " + port +
                                            "\n  ProxyJump jumphost\nHost jumphost\n  HostName "
                                            "127.0.0.1\n  Port " +
                                            port + "\n"));
    auto args = std::vector<std::string>{"exec"};
    auto c = common(kh);
    c[1] = config;  // -F
    args.insert(args.end(), c.begin(), c.end());
    args.insert(args.end(), {"-l", "root", "target", "--", "echo", "via-jump"});
    auto r = run_tunnel(args);
    ASSERT_TRUE(r.ok()) << r.describe() << "\nsshd log:\n" << sshd_->log();
    EXPECT_EQ(r.out, "via-jump\n");
}

TEST_F(HostCertificate, CertificateForAnotherHostIsRefused) {
    start_with_certificate(*ca_, cert_request().names("db1.example.com,db2.example.com"));
    const auto kh = known_hosts_trusting(*ca_);
    auto r = tunnel_exec(kh);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("is not for 127.0.0.1"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("principals db1.example.com,db2.example.com"), std::string::npos) << r.err;

    auto reference = openssh(kh);
    EXPECT_EQ(reference.exit_code, 255) << reference.describe();
}

TEST_F(HostCertificate, ExpiredCertificateIsRefusedSayingWhen) {
    start_with_certificate(*ca_, cert_request().names("127.0.0.1").valid("20200101:20200201"));
    auto r = tunnel_exec(known_hosts_trusting(*ca_));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("expired at 2020-02-01 00:00:00 UTC"), std::string::npos) << r.err;
}

TEST_F(HostCertificate, CertificateFromAnUntrustedCaIsRefused) {
    auto rogue = ssh_ca::create(*dir_, "rogue_ca");
    ASSERT_TRUE(rogue) << rogue.error().message;
    start_with_certificate(*rogue, cert_request().names("127.0.0.1"));
    const auto kh = known_hosts_trusting(*ca_);
    auto r = tunnel_exec(kh);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("which no @cert-authority line for [127.0.0.1]:" +
                         std::to_string(sshd_->port()) + " trusts"),
              std::string::npos)
        << r.err;
    auto reference = openssh(kh);
    EXPECT_EQ(reference.exit_code, 255) << reference.describe();
}

TEST_F(HostCertificate, CertAuthorityForOtherHostsDoesNotApply) {
    start_with_certificate(*ca_, cert_request().names("127.0.0.1"));
    auto r = tunnel_exec(known_hosts_trusting(*ca_, "*.example.com"));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("is not known"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tunnel::test
