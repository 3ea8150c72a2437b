// OpenSSH certificate parsing and checking (ssh/certificate.hpp) against
// certificates made once with `ssh-keygen -s` (OpenSSH 9.2) and embedded
// here: Ed25519, ECDSA and RSA CAs, Ed25519, ECDSA and RSA certified keys.
#include "ssh/certificate.hpp"

#include <string>

#include <gtest/gtest.h>

namespace tunnel::ssh {
namespace {

// Public key and certificate blobs (base64), as in the .pub files.
constexpr std::string_view ca_ed =
    "AAAAC3NzaC1lZDI1NTE5AAAAIGBIIJ4Djs+BdR/BZLRsI2tTiKmWZ574HvNHZYJcXBQd";
constexpr std::string_view ca_ec =
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBImCuiiMwhldXuzDwXxDilG2oX1dUwEzqjjg"
    "brCbBBCBXMfwpxY7wL724u7uIubK5ctPg41XB1to20Es37RoUcM=";
constexpr std::string_view ca_rsa =
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCwkvpt4OeQGht/twWBOsixuSjEA2gLur1f47WXE05Uwq4Qbuevh7nTLNKi"
    "20Rxs/iyWONAZR65icTZaNa1IkfIAhb5+grwOrro+TabZEHJ4TkmqOglLUXIHmOq0iFmSlcGsw1BKqnVZM24WVK/"
    "uPIMqxC8OJDNFkeSDR//7TJkgQ==";
constexpr std::string_view ed_user_cert =
    "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIAG/xI+AxmBiHB3Wiia89yUZ8FaB9QMo3AE8"
    "C2fz9KrGAAAAIHCUOKfBS5ajfbH/eIhDzaqaCIhguP1EM0EuIBUwl9QWAAAAAAAAAAcAAAABAAAACGFsaWNlIGlk"
    "AAAAEQAAAARyb290AAAABWFsaWNlAAAAAGWSAIAAAAAAeGH4AAAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2Fy"
    "ZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcA"
    "AAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5"
    "AAAAIGBIIJ4Djs+BdR/BZLRsI2tTiKmWZ574HvNHZYJcXBQdAAAAUwAAAAtzc2gtZWQyNTUxOQAAAECwU6LZA68n"
    "37IvB+iXE/BiOFoww27YDH1xsKaOmIds+WiGOFlt2EvdQzrh/a/MVH9k8JrU+OUmM+h3QfVjeTAI";
constexpr std::string_view ec_ca_host_cert =
    "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIJrNn6NyepKTD3iNYaT0BjpOdI0Abm9OCIjc"
    "FHGFPJ9xAAAAIHCUOKfBS5ajfbH/eIhDzaqaCIhguP1EM0EuIBUwl9QWAAAAAAAAAAgAAAACAAAABWhvc3QxAAAA"
    "HQAAAAxob3N0LmV4YW1wbGUAAAAJMTI3LjAuMC4xAAAAAGWSAIAAAAAAeGH4AAAAAAAAAAAAAAAAAAAAAGgAAAAT"
    "ZWNkc2Etc2hhMi1uaXN0cDI1NgAAAAhuaXN0cDI1NgAAAEEEiYK6KIzCGV1e7MPBfEOKUbahfV1TATOqOOBusJsE"
    "EIFcx/CnFjvAvvbi7u4i5srly0+DjVcHW2jbQSzftGhRwwAAAGQAAAATZWNkc2Etc2hhMi1uaXN0cDI1NgAAAEkA"
    "AAAhAOHcZ0xurkgpfen84vVBl49KxLZfUmCu68SSjeoW7ZirAAAAIC3e5+Lh0GLyxNaNPD2e9c1FNuDW7AWITJSV"
    "hwlcBSKf";
constexpr std::string_view rsa512_ca_cert =
    "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIBfo1vj0Pp4rKSH3dRcdoZkHS4fRHS3L6/pp"
    "zm52XyZCAAAAIHCUOKfBS5ajfbH/eIhDzaqaCIhguP1EM0EuIBUwl9QWAAAAAAAAAAAAAAABAAAABnJzYTUxMgAA"
    "AAgAAAAEcm9vdAAAAABlkgCAAAAAAHhh+AAAAAAAAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAA"
    "F3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJt"
    "aXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAlwAAAAdzc2gtcnNhAAAAAwEAAQAAAIEAsJL6"
    "beDnkBobf7cFgTrIsbkoxANoC7q9X+O1lxNOVMKuEG7nr4e50yzSottEcbP4sljjQGUeuYnE2WjWtSJHyAIW+foK"
    "8Dq66Pk2m2RByeE5JqjoJS1FyB5jqtIhZkpXBrMNQSqp1WTNuFlSv7jyDKsQvDiQzRZHkg0f/+0yZIEAAACUAAAA"
    "DHJzYS1zaGEyLTUxMgAAAIB00RtycL4gu4qGtkuuHzYmpz6po+97GCUrmUQK+SmZEnLAHh4DKO0WAdu4sviHosV8"
    "IYcqoJU94y3enuFaCLOZofCzHK3I0JcPlY+qKotNLMQoy65a8qQhflUtrgB3sfwDCF+KEMFRgONUvHAOUJX9Ib8D"
    "oceoM4MAQJVS+L0tng==";
constexpr std::string_view rsa_sha1_ca_cert =
    "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIJJ9ZtWMDDGhkYTG6CB2drcvJDuzcm9VKgCT"
    "OMEi4xZ1AAAAIHCUOKfBS5ajfbH/eIhDzaqaCIhguP1EM0EuIBUwl9QWAAAAAAAAAAAAAAABAAAAB3JzYXNoYTEA"
    "AAAIAAAABHJvb3QAAAAAAAAAAP//////////AAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAA"
    "ABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVy"
    "bWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAAJcAAAAHc3NoLXJzYQAAAAMBAAEAAACBALCS"
    "+m3g55AaG3+3BYE6yLG5KMQDaAu6vV/jtZcTTlTCrhBu56+HudMs0qLbRHGz+LJY40BlHrmJxNlo1rUiR8gCFvn6"
    "CvA6uuj5NptkQcnhOSao6CUtRcgeY6rSIWZKVwazDUEqqdVkzbhZUr+48gyrELw4kM0WR5INH//tMmSBAAAAjwAA"
    "AAdzc2gtcnNhAAAAgD4gVp5k96eG/uC9zVcnpX4xwGHnKl+Akpn+Ek8stGl7VD/cCb0atdWRtLbHcvDhA0rSRSU5"
    "/fpzNzOpl2JnizPHRA+ruVuxGm5CKGhTTNcBUSIdiqDKjwfkTO2jw4a2Rl8v8WIcalsyUVz/C4of8wh/URiAWe1d"
    "tgSY3iAfBYam";
constexpr std::string_view user_key =
    "AAAAC3NzaC1lZDI1NTE5AAAAIHCUOKfBS5ajfbH/eIhDzaqaCIhguP1EM0EuIBUwl9QW";
constexpr std::string_view ecdsa_key =
    "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBDC+q1Yen2Hd5zdtvQbG3w/eLTeXw3wf9wgh"
    "GpyyBESTXiBV6quepTdyFGyBRTos7WPCYs4/NPmDkWEODEiFZKABcrD2npOau/LFHodd7YF1KL73MgxgreeL4sLr"
    "u6HBAg==";
constexpr std::string_view ecdsa_key_cert =
    "AAAAKGVjZHNhLXNoYTItbmlzdHAzODQtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgg/eiNogTLKeHpSDpdAUX73Xo"
    "ZnlEVHxH84r8DR7dQjMAAAAIbmlzdHAzODQAAABhBDC+q1Yen2Hd5zdtvQbG3w/eLTeXw3wf9wghGpyyBESTXiBV"
    "6quepTdyFGyBRTos7WPCYs4/NPmDkWEODEiFZKABcrD2npOau/LFHodd7YF1KL73MgxgreeL4sLru6HBAgAAAAAA"
    "AAAAAAAAAQAAAAJrNQAAAAgAAAAEcm9vdAAAAABlkgCAAAAAAHhh+AAAAAAAAAAAggAAABVwZXJtaXQtWDExLWZv"
    "cndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJk"
    "aW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQy"
    "NTUxOQAAACBgSCCeA47PgXUfwWS0bCNrU4iplmee+B7zR2WCXFwUHQAAAFMAAAALc3NoLWVkMjU1MTkAAABAeTNu"
    "w9XLpIC440zwA0FczAOruqiINhcNkx4uIxVg5q+/mHbxCQDBSyVSkaNhzXC7wXsvzC2lyH4ILYTYCNb3Dw==";
constexpr std::string_view rsa_key =
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCgxKHx3NBB7XigjWxTJNhfrCsTAv/xRB80rQtjW3z9m4SdBRDy4avOV4Wh"
    "gwIGJ0T5Orvx0HEqZs+rHgaeiruECfkvJSjSZdRoK899h2bpzCEx8PtyHWxIIPucbVWhHTDjmxhVYu5UhgnKWD5q"
    "avEPK+MCb5kc230WTsiK0HBzlw==";
constexpr std::string_view rsa_key_cert =
    "AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgb6FqG7BI0ajrW9TSBy8XDw7en6fp8QczOmK7fzsh"
    "KuoAAAADAQABAAAAgQCgxKHx3NBB7XigjWxTJNhfrCsTAv/xRB80rQtjW3z9m4SdBRDy4avOV4WhgwIGJ0T5Orvx"
    "0HEqZs+rHgaeiruECfkvJSjSZdRoK899h2bpzCEx8PtyHWxIIPucbVWhHTDjmxhVYu5UhgnKWD5qavEPK+MCb5kc"
    "230WTsiK0HBzlwAAAAAAAAAAAAAAAQAAAAJrNgAAAAgAAAAEcm9vdAAAAABlkgCAAAAAAHhh+AAAAAAiAAAADWZv"
    "cmNlLWNvbW1hbmQAAAANAAAACS9iaW4vdHJ1ZQAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdw"
    "ZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0"
    "LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgYEggngOOz4F1"
    "H8FktGwja1OIqZZnnvge80dlglxcFB0AAABTAAAAC3NzaC1lZDI1NTE5AAAAQKry/MknOSSHUFAB+lCblAEmBJLN"
    "xx8WymhwfcHrS06ersfRJbaFTp5xVbntrSLWbw/RyquW/VVWguqE4rF14gQ=";

std::string blob(std::string_view b64) {
    auto b = decode_base64(b64);
    EXPECT_TRUE(b) << b64;
    return b.value_or(std::string{});
}

constexpr std::int64_t jan_2025 = 1735689600;  // inside 2024-01-01 .. 2034-01-01

TEST(Certificate, ParsesAnEd25519UserCertificate) {
    auto c = parse_certificate(blob(ed_user_cert));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->type, "ssh-ed25519-cert-v01@openssh.com");
    EXPECT_EQ(c->key_type, "ssh-ed25519");
    EXPECT_EQ(c->key_blob, blob(user_key));
    EXPECT_EQ(c->serial, 7u);
    EXPECT_EQ(c->role, certificate_role::user);
    EXPECT_EQ(c->key_id, "alice id");
    EXPECT_EQ(c->principals, (std::vector<std::string>{"root", "alice"}));
    EXPECT_EQ(c->valid_after, 1704067200u);
    EXPECT_EQ(c->valid_before, 2019686400u);
    EXPECT_TRUE(c->critical_options.empty());
    EXPECT_FALSE(c->extensions.empty());  // permit-pty and friends
    EXPECT_EQ(c->ca_key_blob, blob(ca_ed));
    EXPECT_EQ(key_blob_fingerprint(c->ca_key_blob),
              "SHA256:hINRROBGr0ZvZO9ldk/NT3q5LmNCGGdn9FqyyFzM4iY");
    EXPECT_EQ(key_blob_fingerprint(c->key_blob),
              "SHA256:IrSchhbUdvr+Pd82aWgoT2RzmqQbX7ANF4kz7Fc0JU4");
    EXPECT_TRUE(verify_certificate_signature(*c));
    EXPECT_TRUE(check_certificate_time(*c, jan_2025));
    EXPECT_EQ(describe_certificate(*c),
              "ID \"alice id\" serial 7, CA ED25519 "
              "SHA256:hINRROBGr0ZvZO9ldk/NT3q5LmNCGGdn9FqyyFzM4iY, principals root,alice");
}

TEST(Certificate, ChecksEcdsaAndRsaCaSignatures) {
    auto host = parse_certificate(blob(ec_ca_host_cert));
    ASSERT_TRUE(host) << host.error().message;
    EXPECT_EQ(host->role, certificate_role::host);
    EXPECT_EQ(host->principals, (std::vector<std::string>{"host.example", "127.0.0.1"}));
    EXPECT_EQ(host->ca_key_blob, blob(ca_ec));
    EXPECT_TRUE(verify_certificate_signature(*host))
        << verify_certificate_signature(*host).error().message;

    auto rsa = parse_certificate(blob(rsa512_ca_cert));
    ASSERT_TRUE(rsa) << rsa.error().message;
    EXPECT_EQ(rsa->signature_algorithm, "rsa-sha2-512");
    EXPECT_EQ(rsa->ca_key_blob, blob(ca_rsa));
    EXPECT_TRUE(verify_certificate_signature(*rsa))
        << verify_certificate_signature(*rsa).error().message;
}

TEST(Certificate, RefusesSha1RsaCaSignaturesAsOpenSshDoes) {
    auto c = parse_certificate(blob(rsa_sha1_ca_cert));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->signature_algorithm, "ssh-rsa");
    EXPECT_EQ(c->valid_after, 0u);
    EXPECT_EQ(c->valid_before, ~std::uint64_t{0});
    auto v = verify_certificate_signature(*c);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("SHA-1"), std::string::npos) << v.error().message;
    EXPECT_TRUE(check_certificate_time(*c, 0));
    EXPECT_EQ(format_certificate_time(c->valid_before), "forever");
}

TEST(Certificate, CertifiedEcdsaAndRsaKeysMatchTheirPublicKeys) {
    auto ec = parse_certificate(blob(ecdsa_key_cert));
    ASSERT_TRUE(ec) << ec.error().message;
    EXPECT_EQ(ec->key_type, "ecdsa-sha2-nistp384");
    EXPECT_EQ(ec->key_blob, blob(ecdsa_key));
    EXPECT_TRUE(verify_certificate_signature(*ec));

    auto rsa = parse_certificate(blob(rsa_key_cert));
    ASSERT_TRUE(rsa) << rsa.error().message;
    EXPECT_EQ(rsa->key_type, "ssh-rsa");
    EXPECT_EQ(rsa->key_blob, blob(rsa_key));
    EXPECT_EQ(rsa->critical_options, (std::vector<std::string>{"force-command"}));
    EXPECT_TRUE(verify_certificate_signature(*rsa));
}

TEST(Certificate, AnyChangedByteBreaksTheSignatureOrTheParse) {
    const std::string good = blob(ed_user_cert);
    // Every byte of the signed part (the signature field itself is skipped).
    auto parsed = parse_certificate(good);
    ASSERT_TRUE(parsed);
    const std::size_t signed_len = parsed->signed_data.size();
    for (std::size_t i = 0; i < signed_len; ++i) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        auto c = parse_certificate(bad);
        if (!c) continue;  // a length or type field: malformed
        EXPECT_FALSE(verify_certificate_signature(*c)) << "byte " << i << " changed, still valid";
    }
}

TEST(Certificate, TruncatedAndTrailingBytesAreMalformed) {
    const std::string good = blob(ed_user_cert);
    for (std::size_t n = 0; n < good.size(); n += 7) {
        auto c = parse_certificate(good.substr(0, n));
        EXPECT_FALSE(c) << "parsed a certificate cut at " << n;
    }
    EXPECT_FALSE(parse_certificate(good + "x"));
    auto plain = parse_certificate(blob(user_key));
    ASSERT_FALSE(plain);
    EXPECT_NE(plain.error().message.find("plain key, not a certificate"), std::string::npos);
}

TEST(Certificate, ValidityWindowSaysWhen) {
    auto c = parse_certificate(blob(ed_user_cert));
    ASSERT_TRUE(c);
    auto early = check_certificate_time(*c, 1704067199);
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().message, "is not valid before 2024-01-01 00:00:00 UTC");
    auto late = check_certificate_time(*c, 2019686400);
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().message, "expired at 2034-01-01 00:00:00 UTC");
    EXPECT_TRUE(check_certificate_time(*c, 2019686399));
}

TEST(Certificate, CertificateAlgorithmNames) {
    EXPECT_EQ(certificate_algorithm_for("ssh-ed25519"), "ssh-ed25519-cert-v01@openssh.com");
    EXPECT_EQ(certificate_algorithm_for("rsa-sha2-512"), "rsa-sha2-512-cert-v01@openssh.com");
    EXPECT_EQ(certificate_algorithm_for("ecdsa-sha2-nistp256"),
              "ecdsa-sha2-nistp256-cert-v01@openssh.com");
    EXPECT_EQ(certificate_algorithm_for("ssh-dss"), "");
    EXPECT_TRUE(is_certificate_type("ssh-rsa-cert-v01@openssh.com"));
    EXPECT_FALSE(is_certificate_type("ssh-rsa"));
}

}  // namespace
}  // namespace tunnel::ssh
