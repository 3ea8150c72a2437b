// User certificates (issue 14): `tunnel exec` logs in to a real sshd that
// trusts a CA (TrustedUserCAKeys) and has no authorized_keys entry for the
// user's key, with the certificate from CertificateFile or from KEY-cert.pub
// beside `-i KEY`; certificates that cannot work are refused with messages
// that say why. Certificates are made with `ssh-keygen -s`.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/ssh_ca.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

class UserCertificate : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-usercert");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        auto ca = ssh_ca::create(*dir_, "user_ca");
        ASSERT_TRUE(ca) << ca.error().message;
        ca_.emplace(std::move(*ca));
        sshd_options o;
        o.extra_config = {"TrustedUserCAKeys " + ca_->key().pub_path()};
        auto s = sshd_fixture::start(o);
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
    }

    // exec flags without the fixture's authorized key: only `keys` (-i).
    std::vector<std::string> exec(std::vector<std::string> extra) const {
        std::vector<std::string> args = {"exec",
                                         "-F",
                                         "/dev/null",
                                         "-p",
                                         std::to_string(sshd_->port()),
                                         "-o",
                                         "UserKnownHostsFile=" + sshd_->known_hosts_path(),
                                         "-o",
                                         "GlobalKnownHostsFile=/dev/null",
                                         "-o",
                                         "BatchMode=yes",
                                         "-o",
                                         "IdentitiesOnly=yes"};
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), {"root@127.0.0.1", "--", "echo", "in-with-cert"});
        return args;
    }

    ssh_key_files key(const std::string& name) const {
        auto k = generate_ssh_key(*dir_, name);
        EXPECT_TRUE(k) << k.error().message;
        return k ? *k : ssh_key_files{};
    }

    std::string sign(const ssh_key_files& k, cert_request request) const {
        auto c = ca_->sign(k.pub_path(), request);
        EXPECT_TRUE(c) << c.error().message;
        return c ? *c : std::string{};
    }

    std::optional<temp_dir> dir_;
    std::optional<ssh_ca> ca_;
    std::optional<sshd_fixture> sshd_;
};

TEST_F(UserCertificate, CertificateFileLogsInWithoutAnAuthorizedKeysEntry) {
    auto alice = key("alice");
    auto cert =
        sign(alice,
             cert_request().id("alice@test").names("root").into(dir_->file("elsewhere-cert.pub")));
    // The certificate is not beside the key: only CertificateFile finds it.
    auto r = run_tunnel(exec({"-i", alice.path, "-o", "CertificateFile=" + cert}));
    ASSERT_TRUE(r.ok()) << r.describe() << "\nsshd log:\n" << sshd_->log();
    EXPECT_EQ(r.out, "in-with-cert\n");
    EXPECT_NE(sshd_->log().find("Accepted certificate ID \"alice@test\""), std::string::npos)
        << sshd_->log();

    // Control: the same key without its certificate is refused (it is in no authorized_keys).
    auto plain = run_tunnel(exec({"-i", alice.path}));
    EXPECT_EQ(plain.exit_code, 255) << plain.describe();
    EXPECT_NE(plain.err.find("permission denied"), std::string::npos) << plain.err;
}

TEST_F(UserCertificate, IdentityFilePicksUpTheCertificateBesideIt) {
    auto bob = key("bob");
    auto cert = sign(bob, cert_request().id("bob@test").names("root"));
    ASSERT_EQ(cert, bob.cert_path());
    auto r = run_tunnel(exec({"-i", bob.path}));
    ASSERT_TRUE(r.ok()) << r.describe() << "\nsshd log:\n" << sshd_->log();
    EXPECT_EQ(r.out, "in-with-cert\n");
    EXPECT_NE(sshd_->log().find("Accepted certificate ID \"bob@test\""), std::string::npos);
}

TEST_F(UserCertificate, ExpiredCertificateIsRefusedSayingWhen) {
    auto carol = key("carol");
    sign(carol, cert_request().names("root").valid("20200101:20200102"));
    auto r = run_tunnel(exec({"-i", carol.path}));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("certificate " + carol.cert_path() + " expired at 2020-01-02 00:00:00"),
              std::string::npos)
        << r.err;
}

TEST_F(UserCertificate, CertificateFromAnotherCaIsRefusedNamingTheCa) {
    auto other = ssh_ca::create(*dir_, "other_ca");
    ASSERT_TRUE(other) << other.error().message;
    auto dave = key("dave");
    ASSERT_TRUE(other->sign(dave.pub_path(), cert_request().names("root")));
    auto fp = run({"ssh-keygen", "-l", "-f", other->key().pub_path()});
    ASSERT_TRUE(fp.ok()) << fp.describe();
    const std::string ca_fp = fp.out.substr(fp.out.find("SHA256:"), 50);

    auto r = run_tunnel(exec({"-i", dave.path}));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("the server refused certificate " + dave.cert_path()), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(ca_fp.substr(0, ca_fp.find(' '))), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("TrustedUserCAKeys"), std::string::npos) << r.err;
}

TEST_F(UserCertificate, CertificateForAnotherKeyIsNamed) {
    auto erin = key("erin");
    auto frank = key("frank");
    auto franks_cert = sign(frank, cert_request().names("root"));
    // Frank's certificate next to Erin's key, and given as CertificateFile.
    auto text = read_text_file(franks_cert);
    ASSERT_TRUE(text);
    ASSERT_TRUE(write_text_file(erin.cert_path(), *text));
    auto r = run_tunnel(exec({"-i", erin.path}));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("certificate " + erin.cert_path() + " certifies another key"),
              std::string::npos)
        << r.err;

    std::remove(erin.cert_path().c_str());
    auto c = run_tunnel(exec({"-i", erin.path, "-o", "CertificateFile=" + franks_cert}));
    EXPECT_EQ(c.exit_code, 255) << c.describe();
    EXPECT_NE(c.err.find("certificate " + franks_cert + " certifies key SHA256:"),
              std::string::npos)
        << c.err;
    EXPECT_NE(c.err.find("not among the identity files"), std::string::npos) << c.err;
}

TEST_F(UserCertificate, UnusableCertificateFileIsAnError) {
    auto gina = key("gina");
    const auto garbage = dir_->file("garbage-cert.pub");
    ASSERT_TRUE(write_text_file(garbage, "this is not a certificate\n"));
    auto r = run_tunnel(exec({"-i", gina.path, "-o", "CertificateFile=" + garbage}));
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find("certificate file " + garbage + " holds no OpenSSH certificate"),
              std::string::npos)
        << r.err;

    // A host certificate is not a user certificate.
    auto host_cert = sign(gina, cert_request().names("127.0.0.1").for_host());
    auto h = run_tunnel(exec({"-i", gina.path}));
    EXPECT_EQ(h.exit_code, 2) << h.describe();
    EXPECT_NE(h.err.find(host_cert + " is a host certificate"), std::string::npos) << h.err;
}

}  // namespace
}  // namespace tunnel::test
