#include "ssh/known_hosts.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tunnel::ssh {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Real keys made with ssh-keygen on this machine.
constexpr std::string_view ed_a =
    "AAAAC3NzaC1lZDI1NTE5AAAAIG/3LLPC7I76xHtxYin1+52fc8NVYfcy0QxaUEKaVVTs";
constexpr std::string_view ed_b =
    "AAAAC3NzaC1lZDI1NTE5AAAAIK6pLXAdI4IFygltRsD0t8kso3dnvYoJJH3mY7D4y/uN";
constexpr std::string_view ecdsa =
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBL4Hs+cTQ7UiDRU26/"
    "CD5vloRV0CHZllXU++CdRe5qgPf/"
    "WzD3qfXorvWGZdGg0DZP3KlK3GDGa3Yelr+14uln4=";
constexpr std::string_view rsa =
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC3ugaQj66IJfHnBIZ6cof9j8d6IdtQ9BHhaPWilK0MZW0ATkqblwOlbr2WyZMNR2"
    "wB9qgoI65"
    "SKH18A9e+mp1C/uJOSAIgHBK7/3JOooNvFZCmRi/m6sR8FHpKPV+wagFJsHPz/ftApuNRM2GWWGZeRHvMTZN+qf4uc/"
    "SmP0sHpw==";

// `ssh-keygen -H` output (OpenSSH 9.2) for
//   example.com ssh-ed25519 <ed_a>
//   [example.com]:2222 ecdsa-sha2-nistp256 <ecdsa>
constexpr std::string_view hashed_file =
    "|1|Nuvw1UPWkhYPBsqvBpmbMp67jtg=|vMWskPMzU6U/3cJ6a6VKp4mRCL4= ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIG/3LLPC7I76xHtxYin1+52fc8NVYfcy0QxaUEKaVVTs\n"
    "|1|kqr7LiOoKUIqH3kQXfddgM3U6jA=|aHwYofK3pF5WPwUMecrHFB/Unq0= ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBL4Hs+cTQ7UiDRU26/"
    "CD5vloRV0CHZllXU++CdRe5qgPf/"
    "WzD3qfXorvWGZdGg0DZP3KlK3GDGa3Yelr+14uln4=\n";

std::string line(std::string_view hosts, std::string_view type, std::string_view key,
                 std::string_view comment = "") {
    std::string s = std::string(hosts) + " " + std::string(type) + " " + std::string(key);
    if (!comment.empty()) s += " " + std::string(comment);
    return s + "\n";
}

known_hosts from_text(const std::string& text, std::string_view name = "kh") {
    known_hosts kh;
    kh.add_text(text, name);
    return kh;
}

TEST(KnownHostsCheck, MatchUnknownChangedWithLocation) {
    auto kh = from_text("# my hosts\n\n" + line("alpha,beta", "ssh-ed25519", ed_a, "me@laptop") +
                        line("gamma", "ssh-ed25519", ed_b));
    auto m = kh.check("beta", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(m.status, host_key_status::match);
    EXPECT_EQ(m.where, (known_hosts_location{"kh", 3}));

    auto c = kh.check("gamma", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(c.status, host_key_status::changed);
    EXPECT_EQ(c.where, (known_hosts_location{"kh", 4}));

    auto u = kh.check("delta", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(u.status, host_key_status::unknown);
    EXPECT_FALSE(u.where);
    EXPECT_TRUE(u.other_key_types.empty());
    EXPECT_TRUE(kh.skipped().empty());
}

TEST(KnownHostsCheck, OtherKeyTypesOnlyIsUnknownWithWarningInfo) {
    auto kh =
        from_text(line("alpha", "ecdsa-sha2-nistp256", ecdsa) + line("alpha", "ssh-rsa", rsa));
    auto r = kh.check("alpha", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(r.status, host_key_status::unknown);
    EXPECT_THAT(r.other_key_types, ElementsAre("ecdsa-sha2-nistp256", "ssh-rsa"));
}

TEST(KnownHostsCheck, AnyMatchingEntryWinsOverAConflictingOne) {
    // Two keys of one type for a host (e.g. during rotation): either is fine.
    auto kh = from_text(line("alpha", "ssh-ed25519", ed_b) + line("alpha", "ssh-ed25519", ed_a));
    auto r = kh.check("alpha", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(r.status, host_key_status::match);
    EXPECT_EQ(r.where->line, 2u);
}

TEST(KnownHostsCheck, PortFormAndCaseInsensitiveHosts) {
    auto kh = from_text(line("[Alpha.Example]:2222", "ssh-ed25519", ed_a) +
                        line("alpha.example", "ssh-ed25519", ed_b));
    EXPECT_EQ(kh.check("alpha.example", 2222, "ssh-ed25519", ed_a).status, host_key_status::match);
    EXPECT_EQ(kh.check("ALPHA.example", 22, "ssh-ed25519", ed_b).status, host_key_status::match);
    // The port-22 entry does not cover other ports, and vice versa.
    EXPECT_EQ(kh.check("alpha.example", 2200, "ssh-ed25519", ed_b).status,
              host_key_status::unknown);
    EXPECT_EQ(kh.check("alpha.example", 22, "ssh-ed25519", ed_a).status, host_key_status::changed);
    EXPECT_EQ(known_hosts_name("Host", 22), "host");
    EXPECT_EQ(known_hosts_name("::1", 2222), "[::1]:2222");
}

TEST(KnownHostsCheck, HashedEntriesFromSshKeygen) {
    auto kh = from_text(std::string(hashed_file), "hashed");
    EXPECT_EQ(kh.size(), 2u);
    auto r = kh.check("example.com", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(r.status, host_key_status::match);
    EXPECT_EQ(r.where, (known_hosts_location{"hashed", 1}));
    EXPECT_EQ(kh.check("EXAMPLE.com", 22, "ssh-ed25519", ed_b).status, host_key_status::changed);
    EXPECT_EQ(kh.check("example.com", 2222, "ecdsa-sha2-nistp256", ecdsa).status,
              host_key_status::match);
    EXPECT_EQ(kh.check("example.com", 2222, "ssh-ed25519", ed_a).status, host_key_status::unknown);
    EXPECT_EQ(kh.check("example.org", 22, "ssh-ed25519", ed_a).status, host_key_status::unknown);
    EXPECT_THAT(kh.key_types_for("example.com", 2222), ElementsAre("ecdsa-sha2-nistp256"));
}

TEST(KnownHostsCheck, WildcardAndNegatedPatterns) {
    auto kh = from_text(line("*.example.com,!bad.example.com,10.0.0.?", "ssh-ed25519", ed_a));
    EXPECT_EQ(kh.check("web.example.com", 22, "ssh-ed25519", ed_a).status, host_key_status::match);
    EXPECT_EQ(kh.check("10.0.0.7", 22, "ssh-ed25519", ed_a).status, host_key_status::match);
    EXPECT_EQ(kh.check("10.0.0.17", 22, "ssh-ed25519", ed_a).status, host_key_status::unknown);
    EXPECT_EQ(kh.check("bad.example.com", 22, "ssh-ed25519", ed_a).status,
              host_key_status::unknown);
    EXPECT_EQ(kh.check("example.com", 22, "ssh-ed25519", ed_a).status, host_key_status::unknown);
}

TEST(KnownHostsCheck, RevokedWinsOverMatch) {
    auto kh = from_text(line("alpha", "ssh-ed25519", ed_a) + "@revoked * ssh-ed25519 " +
                        std::string(ed_a) + "\n");
    auto r = kh.check("alpha", 22, "ssh-ed25519", ed_a);
    EXPECT_EQ(r.status, host_key_status::revoked);
    EXPECT_EQ(r.where->line, 2u);
    EXPECT_EQ(kh.check("beta", 22, "ssh-ed25519", ed_a).status, host_key_status::revoked);
    EXPECT_EQ(kh.check("beta", 22, "ssh-ed25519", ed_b).status, host_key_status::unknown);
}

TEST(KnownHostsCheck, CertAuthorityLinesAreNotPlainKeys) {
    auto kh = from_text("@cert-authority *.example.com ssh-ed25519 " + std::string(ed_a) + "\n");
    EXPECT_EQ(kh.check("a.example.com", 22, "ssh-ed25519", ed_a).status, host_key_status::unknown);
    EXPECT_EQ(kh.check("a.example.com", 22, "ssh-ed25519", ed_b).status, host_key_status::unknown);
    EXPECT_TRUE(kh.key_types_for("a.example.com", 22).empty());
}

TEST(KnownHostsCheck, CertAuthoritiesForAHostFollowItsPatterns) {
    auto kh = from_text("@cert-authority *.example.com,!bad.example.com ssh-ed25519 " +
                        std::string(ed_a) + "\n" + "@cert-authority [10.0.0.1]:* ssh-ed25519 " +
                        std::string(ed_b) + "\n" + line("a.example.com", "ssh-ed25519", ed_b) +
                        "@revoked * ssh-ed25519 " + std::string(ed_b) + "\n");
    auto cas = kh.cert_authorities_for("a.example.com", 22);
    ASSERT_EQ(cas.size(), 1u);
    EXPECT_EQ(cas[0].where, (known_hosts_location{"kh", 1}));
    EXPECT_EQ(cas[0].key_blob.substr(4, 11), "ssh-ed25519");
    EXPECT_TRUE(kh.cert_authorities_for("bad.example.com", 22).empty());
    EXPECT_TRUE(kh.cert_authorities_for("a.example.com", 2222).empty());  // [a.example.com]:2222
    auto by_port = kh.cert_authorities_for("10.0.0.1", 2222);
    ASSERT_EQ(by_port.size(), 1u);
    EXPECT_EQ(by_port[0].where.line, 2u);
    EXPECT_TRUE(kh.cert_authorities_for("10.0.0.1", 22).empty());

    // @revoked lists the second CA's key for every host; the first is not revoked.
    auto revoked = kh.revoked_for("10.0.0.1", 2222, by_port[0].key_blob);
    ASSERT_TRUE(revoked);
    EXPECT_EQ(revoked->line, 4u);
    EXPECT_FALSE(kh.revoked_for("a.example.com", 22, cas[0].key_blob));
}

TEST(KnownHostsCheck, RsaSignatureAlgorithmsCountAsSshRsa) {
    auto kh = from_text(line("alpha", "ssh-rsa", rsa));
    EXPECT_EQ(kh.check("alpha", 22, "rsa-sha2-512", rsa).status, host_key_status::match);
    EXPECT_EQ(kh.check("alpha", 22, "rsa-sha2-256", rsa).status, host_key_status::match);
    EXPECT_EQ(normalize_key_type("rsa-sha2-512"), "ssh-rsa");
    EXPECT_EQ(normalize_key_type("ssh-ed25519"), "ssh-ed25519");
}

TEST(KnownHostsParse, MalformedLinesAreSkippedAndRemembered) {
    auto kh = from_text(line("alpha", "ssh-ed25519", ed_a) +                      // 1 ok
                        "justonefield\n" +                                        // 2
                        "@bogus alpha ssh-ed25519 " + std::string(ed_a) + "\n" +  // 3
                        line("alpha", "ssh-ed25519", "!!!notbase64") +            // 4
                        line("alpha", "ssh-rsa", ed_a) +                          // 5 type mismatch
                        "alpha 1024 35 1234567\n" +                               // 6 SSH-1
                        "|1|abc|def ssh-ed25519 " + std::string(ed_a) + "\n" +    // 7 bad hash
                        "   # indented comment\r\n" +                             // 8
                        line("beta", "ssh-ed25519", ed_b));                       // 9 ok
    EXPECT_EQ(kh.size(), 2u);
    ASSERT_EQ(kh.skipped().size(), 6u);
    EXPECT_EQ(kh.skipped()[0].line, 2u);
    EXPECT_THAT(kh.skipped()[1].reason, HasSubstr("unknown marker"));
    EXPECT_THAT(kh.skipped()[2].reason, HasSubstr("base64"));
    EXPECT_THAT(kh.skipped()[3].reason, HasSubstr("does not match"));
    EXPECT_THAT(kh.skipped()[4].reason, HasSubstr("SSH-1"));
    EXPECT_THAT(kh.skipped()[5].reason, HasSubstr("hashed"));
    EXPECT_EQ(kh.check("beta", 22, "ssh-ed25519", ed_b).where->line, 9u);
}

TEST(KnownHostsParse, KeyTypesForHostInOrderWithoutDuplicates) {
    auto kh =
        from_text(line("alpha", "ssh-rsa", rsa) + line("alpha,beta", "ssh-ed25519", ed_a) +
                  line("alpha", "ssh-ed25519", ed_b) + line("beta", "ecdsa-sha2-nistp256", ecdsa));
    EXPECT_THAT(kh.key_types_for("alpha", 22), ElementsAre("ssh-rsa", "ssh-ed25519"));
    EXPECT_THAT(kh.key_types_for("beta", 22), ElementsAre("ssh-ed25519", "ecdsa-sha2-nistp256"));
    EXPECT_TRUE(kh.key_types_for("alpha", 2222).empty());
}

TEST(KnownHostsParse, HostKeyAlgorithmsForTypes) {
    EXPECT_EQ(host_key_algorithms_for_types({"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"}),
              "ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256");
    EXPECT_EQ(host_key_algorithms_for_types({"rsa-sha2-256", "ssh-rsa"}),
              "rsa-sha2-512,rsa-sha2-256");
    EXPECT_EQ(host_key_algorithms_for_types({}), "");
}

class KnownHostsFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "known_hosts_test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    static std::string read(const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    static unsigned mode_of(const fs::path& p) {
        struct stat st {};
        EXPECT_EQ(::stat(p.c_str(), &st), 0);
        return st.st_mode & 0777;
    }

    fs::path dir_;
};

TEST_F(KnownHostsFiles, LoadSeveralFilesMissingIsFine) {
    std::ofstream(dir_ / "user") << line("alpha", "ssh-ed25519", ed_a);
    std::ofstream(dir_ / "global")
        << "\n"
        << line("alpha", "ssh-ed25519", ed_b) << line("beta", "ssh-ed25519", ed_b);
    auto kh = known_hosts::load(
        {(dir_ / "missing").string(), (dir_ / "user").string(), (dir_ / "global").string()});
    EXPECT_TRUE(kh.skipped().empty());
    EXPECT_EQ(kh.check("alpha", 22, "ssh-ed25519", ed_a).status, host_key_status::match);
    auto r = kh.check("alpha", 22, "ssh-ed25519", ed_b);
    EXPECT_EQ(r.status, host_key_status::match);
    EXPECT_EQ(r.where, (known_hosts_location{(dir_ / "global").string(), 2}));
    EXPECT_EQ(kh.check("beta", 22, "ssh-ed25519", ed_a).where,
              (known_hosts_location{(dir_ / "global").string(), 3}));
}

TEST_F(KnownHostsFiles, UnreadableFileIsRecordedNotFatal) {
    fs::create_directory(dir_ / "a_directory");
    auto kh = known_hosts::load({(dir_ / "a_directory").string()});
    ASSERT_EQ(kh.skipped().size(), 1u);
    EXPECT_EQ(kh.skipped()[0].line, 0u);
    EXPECT_THAT(kh.skipped()[0].reason, HasSubstr("cannot read"));
}

TEST_F(KnownHostsFiles, AppendCreatesPrivateDirectoryAndFile) {
    fs::path ssh_dir = dir_ / ".ssh";
    fs::path file = ssh_dir / "known_hosts";
    ASSERT_TRUE(known_hosts::append(file.string(), "New.Example", 22, "ssh-ed25519", ed_a));
    EXPECT_EQ(mode_of(ssh_dir), 0700u);
    EXPECT_EQ(mode_of(file), 0600u);
    ASSERT_TRUE(known_hosts::append(file.string(), "::1", 2222, "rsa-sha2-512", rsa));
    EXPECT_EQ(read(file), "new.example ssh-ed25519 " + std::string(ed_a) + "\n[::1]:2222 ssh-rsa " +
                              std::string(rsa) + "\n");
    auto kh = known_hosts::load({file.string()});
    EXPECT_EQ(kh.check("new.example", 22, "ssh-ed25519", ed_a).status, host_key_status::match);
    EXPECT_EQ(kh.check("::1", 2222, "rsa-sha2-256", rsa).status, host_key_status::match);
}

TEST_F(KnownHostsFiles, AppendRepairsMissingTrailingNewline) {
    fs::path file = dir_ / "kh";
    std::ofstream(file) << "alpha ssh-ed25519 " << ed_a;  // no newline
    ASSERT_TRUE(known_hosts::append(file.string(), "beta", 22, "ssh-ed25519", ed_b));
    EXPECT_EQ(read(file), "alpha ssh-ed25519 " + std::string(ed_a) + "\nbeta ssh-ed25519 " +
                              std::string(ed_b) + "\n");
    auto kh = known_hosts::load({file.string()});
    EXPECT_EQ(kh.size(), 2u);
}

TEST_F(KnownHostsFiles, AppendHashedRoundTrips) {
    fs::path file = dir_ / "kh";
    ASSERT_TRUE(
        known_hosts::append(file.string(), "secret.example", 2022, "ssh-ed25519", ed_a, true));
    std::string text = read(file);
    EXPECT_TRUE(text.starts_with("|1|"));
    EXPECT_EQ(text.find("secret"), std::string::npos);
    auto kh = known_hosts::load({file.string()});
    EXPECT_TRUE(kh.skipped().empty());
    EXPECT_EQ(kh.check("secret.example", 2022, "ssh-ed25519", ed_a).status, host_key_status::match);
    EXPECT_EQ(kh.check("secret.example", 22, "ssh-ed25519", ed_a).status, host_key_status::unknown);
}

TEST_F(KnownHostsFiles, AppendRefusesBadInput) {
    fs::path file = dir_ / "kh";
    auto bad = [&](std::string_view host, std::string_view type, std::string_view key) {
        auto r = known_hosts::append(file.string(), host, 22, type, key);
        EXPECT_FALSE(r) << host << " " << type;
        return r ? std::string{} : r.error().message;
    };
    EXPECT_THAT(bad("evil\nhost", "ssh-ed25519", ed_a), HasSubstr("invalid host name"));
    EXPECT_THAT(bad("a b", "ssh-ed25519", ed_a), HasSubstr("invalid host name"));
    EXPECT_THAT(bad("", "ssh-ed25519", ed_a), HasSubstr("invalid host name"));
    EXPECT_THAT(bad("*.x", "ssh-ed25519", ed_a), HasSubstr("invalid host name"));
    EXPECT_THAT(bad("h", "ssh ed25519", ed_a), HasSubstr("invalid key type"));
    EXPECT_THAT(bad("h", "ssh-ed25519", "not base64!"), HasSubstr("base64"));
    EXPECT_THAT(bad("h", "ssh-rsa", ed_a), HasSubstr("does not match"));
    EXPECT_FALSE(fs::exists(file));
}

TEST_F(KnownHostsFiles, AppendIntoMissingDeepDirectoryFails) {
    auto r = known_hosts::append((dir_ / "a/b/kh").string(), "h", 22, "ssh-ed25519", ed_a);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message, HasSubstr((dir_ / "a/b/kh").string()));
}

}  // namespace
}  // namespace tunnel::ssh
