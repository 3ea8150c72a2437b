#include "ssh/ssh_config.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tunnel::ssh {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

resolve_context test_context(std::string home = "/home/alice") {
    resolve_context ctx;
    ctx.home = std::move(home);
    ctx.local_user = "alice";
    ctx.local_hostname = "laptop.example.org";
    ctx.getenv = [](const std::string& name) -> std::optional<std::string> {
        static const std::map<std::string, std::string> env{{"KEYS", "/keys"}};
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    };
    return ctx;
}

ssh_config parse_ok(std::string_view text) {
    auto cfg = ssh_config::parse(text, "test_config", test_context());
    EXPECT_TRUE(cfg.has_value()) << cfg.error().message;
    return cfg ? std::move(*cfg) : ssh_config{};
}

host_config resolve_ok(const ssh_config& cfg, std::string_view alias,
                       std::optional<std::string> user = std::nullopt,
                       std::optional<uint16_t> port = std::nullopt) {
    auto r = cfg.resolve(alias, std::move(user), port);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r ? std::move(*r) : host_config{};
}

std::string parse_error(std::string_view text) {
    auto cfg = ssh_config::parse(text, "test_config", test_context());
    EXPECT_FALSE(cfg.has_value()) << "expected an error for:\n" << text;
    if (cfg) return {};
    EXPECT_EQ(cfg.error().code, core::errc::invalid_argument);
    return cfg.error().message;
}

std::string override_error(std::string_view option) {
    ssh_config cfg;
    auto r = cfg.add_override(option);
    EXPECT_FALSE(r.has_value()) << "expected -o " << option << " to fail";
    return r ? std::string{} : r.error().message;
}

// A private directory acting as $HOME, removed afterwards.
class SshConfigFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "ssh_config_test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        home_ = tmpl;
        fs::create_directories(home_ / ".ssh");
    }
    void TearDown() override { fs::remove_all(home_); }

    void write(const fs::path& rel, std::string_view text) {
        fs::path p = home_ / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }
    resolve_context ctx() const { return test_context(home_.string()); }

    fs::path home_;
};

// --- syntax -----------------------------------------------------------------

TEST(SshConfigSyntax, KeyValueFormsAndCaseInsensitiveKeywords) {
    auto cfg = parse_ok(
        "# comment\n"
        "\n"
        "Host a\n"
        "  hostname a.example.com\n"
        "  PORT=2200\n"
        "  User = bob\n"
        "\tConnectTimeout\t=\t7   # trailing comment\n");
    auto h = resolve_ok(cfg, "a");
    EXPECT_EQ(h.hostname, "a.example.com");
    EXPECT_EQ(h.port, 2200);
    EXPECT_EQ(h.user, "bob");
    EXPECT_EQ(h.connect_timeout, 7000ms);
}

TEST(SshConfigSyntax, QuotedArgumentsAndCrlf) {
    auto cfg = parse_ok(
        "Host q\r\n"
        "  IdentityFile \"/keys/my key\"\r\n"
        "  UserKnownHostsFile '/kh/one file' /kh/two\r\n"
        "  SetEnv GREETING=\"hello world\" X=1\r\n");
    auto h = resolve_ok(cfg, "q");
    EXPECT_THAT(h.identity_files, ElementsAre("/keys/my key"));
    EXPECT_THAT(h.user_known_hosts_files, ElementsAre("/kh/one file", "/kh/two"));
    ASSERT_EQ(h.set_env.size(), 2u);
    EXPECT_EQ(h.set_env[0], (std::pair<std::string, std::string>{"GREETING", "hello world"}));
}

TEST(SshConfigSyntax, UnterminatedQuoteNamesFileAndLine) {
    auto msg = parse_error("Host x\n  IdentityFile \"/keys/oops\n");
    EXPECT_THAT(msg, HasSubstr("test_config:2"));
    EXPECT_THAT(msg, HasSubstr("unterminated"));
}

TEST(SshConfigSyntax, UnknownKeywordIsBadConfigurationOption) {
    auto msg = parse_error("Host x\n  Port 22\n  Colour blue\n");
    EXPECT_THAT(msg, HasSubstr("test_config:3"));
    EXPECT_THAT(msg, HasSubstr("Bad configuration option 'Colour'"));
    EXPECT_THAT(msg, HasSubstr("IgnoreUnknown"));
}

TEST(SshConfigSyntax, IgnoreUnknownSkipsMatchingKeywords) {
    auto cfg = parse_ok(
        "IgnoreUnknown UseKeychain,Add*\n"
        "Host *\n"
        "  UseKeychain yes\n"
        "  AddKeysToMacAgent yes\n"
        "  Port 2022\n");
    EXPECT_EQ(resolve_ok(cfg, "h").port, 2022);
    // Only keywords after the IgnoreUnknown line are covered.
    auto msg = parse_error("UseKeychain yes\nIgnoreUnknown UseKeychain\n");
    EXPECT_THAT(msg, HasSubstr("test_config:1"));
}

TEST(SshConfigSyntax, EveryOpenSshKeywordLoads) {
    // A realistic config full of keywords we do not model.
    auto cfg = parse_ok(
        "Host *\n"
        "  ForwardAgent no\n"
        "  ControlMaster auto\n"
        "  ControlPath ~/.ssh/cm-%r@%h:%p\n"
        "  ControlPersist 10m\n"
        "  AddKeysToAgent yes\n"
        "  GSSAPIAuthentication yes\n"
        "  HashKnownHosts yes\n"
        "  LocalForward 8080 localhost:80\n"
        "  ServerAliveInterval 60\n"
        "  VisualHostKey yes\n"
        "  UpdateHostKeys ask\n"
        "  CanonicalizeHostname no\n"
        "  PubkeyAcceptedKeyTypes +ssh-rsa\n"
        "  ChallengeResponseAuthentication no\n"
        "  TCPKeepAlive yes\n");
    auto h = resolve_ok(cfg, "anything");
    EXPECT_EQ(h.server_alive_interval, 60s);
    EXPECT_TRUE(h.hash_known_hosts);
}

TEST(SshConfigSyntax, MissingValueIsAnError) {
    auto msg = parse_error("Host x\n  Port\n");
    EXPECT_THAT(msg, HasSubstr("test_config:2"));
    EXPECT_THAT(msg, HasSubstr("Port"));
    EXPECT_THAT(parse_error("Host\n"), HasSubstr("test_config:1: Host needs at least one pattern"));
    EXPECT_THAT(parse_error("Port 22 23\n"), HasSubstr("exactly one argument"));
}

// --- values -----------------------------------------------------------------

TEST(SshConfigValues, BadValuesInFileNameFileLineAndAllowedValues) {
    auto port = parse_error("Host never-used\n\n  Port abc\n");
    EXPECT_THAT(port, HasSubstr("test_config:3"));
    EXPECT_THAT(port, HasSubstr("Port must be a number from 1 to 65535, got 'abc'"));
    EXPECT_THAT(parse_error("Port 0\n"), HasSubstr("from 1 to 65535"));
    EXPECT_THAT(parse_error("Port 65536\n"), HasSubstr("from 1 to 65535"));
    EXPECT_THAT(parse_error("StrictHostKeyChecking maybe\n"),
                HasSubstr("yes, ask, accept-new, no or off, got 'maybe'"));
    EXPECT_THAT(parse_error("BatchMode sometimes\n"), HasSubstr("BatchMode must be yes or no"));
    EXPECT_THAT(parse_error("ConnectTimeout -1\n"), HasSubstr("ConnectTimeout must be a time"));
    EXPECT_THAT(parse_error("ServerAliveCountMax many\n"), HasSubstr("whole number >= 0"));
    EXPECT_THAT(parse_error("ConnectionAttempts 0\n"), HasSubstr("whole number >= 1"));
    EXPECT_THAT(parse_error("LogLevel LOUD\n"), HasSubstr("QUIET, FATAL"));
    EXPECT_THAT(parse_error("RequestTTY sometimes\n"), HasSubstr("auto, no, yes or force"));
    EXPECT_THAT(parse_error("SetEnv NOVALUE\n"), HasSubstr("NAME=VALUE"));
    EXPECT_THAT(parse_error("ProxyJump user@:22\n"), HasSubstr("ProxyJump"));
    EXPECT_THAT(parse_error("IdentityFile ~/.ssh/%q\n"), HasSubstr("unknown token %q"));
}

TEST(SshConfigValues, Defaults) {
    auto h = resolve_ok(parse_ok(""), "db1");
    EXPECT_EQ(h.alias, "db1");
    EXPECT_EQ(h.hostname, "db1");
    EXPECT_EQ(h.user, "alice");
    EXPECT_EQ(h.port, 22);
    EXPECT_TRUE(h.identity_files_are_defaults);
    EXPECT_THAT(h.identity_files,
                ElementsAre("/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_ecdsa",
                            "/home/alice/.ssh/id_rsa"));
    EXPECT_FALSE(h.identities_only);
    EXPECT_FALSE(h.identity_agent);
    EXPECT_TRUE(h.proxy_jump.empty());
    EXPECT_FALSE(h.connect_timeout);
    EXPECT_EQ(h.server_alive_interval, 0s);
    EXPECT_EQ(h.server_alive_count_max, 3);
    EXPECT_EQ(h.strict, strict_host_key_checking::yes);
    EXPECT_THAT(h.user_known_hosts_files,
                ElementsAre("/home/alice/.ssh/known_hosts", "/home/alice/.ssh/known_hosts2"));
    EXPECT_THAT(h.global_known_hosts_files,
                ElementsAre("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"));
    EXPECT_FALSE(h.batch_mode);
    EXPECT_TRUE(h.password_authentication);
    EXPECT_TRUE(h.pubkey_authentication);
    EXPECT_FALSE(h.compression);
    EXPECT_EQ(h.connection_attempts, 1);
    EXPECT_EQ(h.log_level, "INFO");
    EXPECT_EQ(h.tty, request_tty::automatic);
}

TEST(SshConfigValues, TypedKeywords) {
    auto h = resolve_ok(parse_ok("Host *\n"
                                 "  IdentitiesOnly yes\n"
                                 "  IdentityAgent none\n"
                                 "  ServerAliveInterval 1m\n"
                                 "  ServerAliveCountMax 5\n"
                                 "  ConnectTimeout 1m30s\n"
                                 "  BatchMode yes\n"
                                 "  PasswordAuthentication no\n"
                                 "  PubkeyAuthentication host-bound\n"
                                 "  Ciphers aes128-gcm@openssh.com,+chacha20-poly1305@openssh.com\n"
                                 "  KexAlgorithms curve25519-sha256\n"
                                 "  MACs hmac-sha2-256\n"
                                 "  HostKeyAlgorithms ^ssh-ed25519\n"
                                 "  Compression yes\n"
                                 "  ConnectionAttempts 3\n"
                                 "  LogLevel debug2\n"
                                 "  RequestTTY force\n"
                                 "  HostKeyAlias shared-name\n"
                                 "  GlobalKnownHostsFile /etc/kh1 /etc/kh2\n"),
                        "x");
    EXPECT_TRUE(h.identities_only);
    EXPECT_EQ(h.identity_agent, "none");
    EXPECT_EQ(h.server_alive_interval, 60s);
    EXPECT_EQ(h.server_alive_count_max, 5);
    EXPECT_EQ(h.connect_timeout, 90'000ms);
    EXPECT_TRUE(h.batch_mode);
    EXPECT_FALSE(h.password_authentication);
    EXPECT_TRUE(h.pubkey_authentication);
    EXPECT_EQ(h.ciphers, "aes128-gcm@openssh.com,+chacha20-poly1305@openssh.com");
    EXPECT_EQ(h.kex_algorithms, "curve25519-sha256");
    EXPECT_EQ(h.macs, "hmac-sha2-256");
    EXPECT_EQ(h.host_key_algorithms, "^ssh-ed25519");
    EXPECT_TRUE(h.compression);
    EXPECT_EQ(h.connection_attempts, 3);
    EXPECT_EQ(h.log_level, "DEBUG2");
    EXPECT_EQ(h.tty, request_tty::force);
    EXPECT_EQ(h.host_key_alias, "shared-name");
    EXPECT_THAT(h.global_known_hosts_files, ElementsAre("/etc/kh1", "/etc/kh2"));
}

TEST(SshConfigValues, StrictHostKeyCheckingValues) {
    auto strict_of = [](std::string_view v) {
        return resolve_ok(parse_ok("StrictHostKeyChecking " + std::string(v) + "\n"), "h").strict;
    };
    EXPECT_EQ(strict_of("yes"), strict_host_key_checking::yes);
    EXPECT_EQ(strict_of("ask"), strict_host_key_checking::yes);
    EXPECT_EQ(strict_of("accept-new"), strict_host_key_checking::accept_new);
    EXPECT_EQ(strict_of("no"), strict_host_key_checking::no);
    EXPECT_EQ(strict_of("off"), strict_host_key_checking::no);
    EXPECT_EQ(strict_of("No"), strict_host_key_checking::no);
}

TEST(SshConfigValues, ConnectTimeoutZeroOrNoneMeansNoTimeout) {
    EXPECT_FALSE(resolve_ok(parse_ok("ConnectTimeout 0\n"), "h").connect_timeout);
    EXPECT_FALSE(resolve_ok(parse_ok("ConnectTimeout none\n"), "h").connect_timeout);
    EXPECT_EQ(resolve_ok(parse_ok("ConnectTimeout 2h\n"), "h").connect_timeout, 7'200'000ms);
}

TEST(SshConfigValues, KnownHostsFilesNoneAndSeveral) {
    auto h = resolve_ok(parse_ok("Host a\n UserKnownHostsFile none\n"
                                 "Host b\n UserKnownHostsFile ~/kh1 %d/kh2 /abs/kh3\n"),
                        "a");
    EXPECT_TRUE(h.user_known_hosts_files.empty());
    h = resolve_ok(parse_ok("Host a\n UserKnownHostsFile none\n"
                            "Host b\n UserKnownHostsFile ~/kh1 %d/kh2 /abs/kh3\n"),
                   "b");
    EXPECT_THAT(h.user_known_hosts_files,
                ElementsAre("/home/alice/kh1", "/home/alice/kh2", "/abs/kh3"));
}

TEST(SshConfigValues, SetEnvFirstLineWinsSendEnvAccumulates) {
    auto h = resolve_ok(parse_ok("Host h\n"
                                 "  SetEnv A=1 B=two=2 A=ignored\n"
                                 "  SendEnv LANG LC_*\n"
                                 "Host *\n"
                                 "  SetEnv C=3\n"
                                 "  SendEnv EDITOR\n"
                                 "  SendEnv -LC_*\n"),
                        "h");
    ASSERT_EQ(h.set_env.size(), 2u);
    EXPECT_EQ(h.set_env[0], (std::pair<std::string, std::string>{"A", "1"}));
    EXPECT_EQ(h.set_env[1], (std::pair<std::string, std::string>{"B", "two=2"}));
    EXPECT_THAT(h.send_env, ElementsAre("LANG", "EDITOR"));
}

// --- Host / Match / first-wins ----------------------------------------------

TEST(SshConfigHost, FirstObtainedValueWins) {
    auto cfg = parse_ok(
        "Host web*\n"
        "  User deploy\n"
        "  Port 2201\n"
        "Host web1\n"
        "  User root\n"
        "  HostName 10.0.0.1\n"
        "Host *\n"
        "  User fallback\n"
        "  Port 22\n");
    auto h = resolve_ok(cfg, "web1");
    EXPECT_EQ(h.user, "deploy");
    EXPECT_EQ(h.port, 2201);
    EXPECT_EQ(h.hostname, "10.0.0.1");
    EXPECT_EQ(resolve_ok(cfg, "db").user, "fallback");
}

TEST(SshConfigHost, PatternListsWildcardsAndNegation) {
    auto cfg = parse_ok(
        "Host *.example.com !bastion.example.com\n"
        "  User inner\n"
        "Host db? cache?\n"
        "  Port 6000\n"
        "Host web1,web2\n"  // OpenSSH: one pattern with a literal comma
        "  Port 6500\n"
        "Host !nothing\n"  // only negated: never matches
        "  Port 7000\n");
    EXPECT_EQ(resolve_ok(cfg, "app.example.com").user, "inner");
    EXPECT_EQ(resolve_ok(cfg, "APP.Example.COM").user, "inner");  // host names fold case
    EXPECT_EQ(resolve_ok(cfg, "bastion.example.com").user, "alice");
    EXPECT_EQ(resolve_ok(cfg, "db1").port, 6000);
    EXPECT_EQ(resolve_ok(cfg, "cache9").port, 6000);
    EXPECT_EQ(resolve_ok(cfg, "db12").port, 22);
    EXPECT_EQ(resolve_ok(cfg, "other").port, 22);
    EXPECT_EQ(resolve_ok(cfg, "web1").port, 22);  // as `ssh -G web1` reports
}

TEST(SshConfigHost, IdentityAndCertificateFilesAccumulate) {
    auto cfg = parse_ok(
        "Host prod\n"
        "  IdentityFile ~/.ssh/prod_ed25519\n"
        "  CertificateFile ~/.ssh/prod-cert.pub\n"
        "Host *\n"
        "  IdentityFile ~/.ssh/id_ed25519\n"
        "  IdentityFile /keys/%r@%h\n"
        "  CertificateFile /certs/all.pub\n");
    auto h = resolve_ok(cfg, "prod");
    EXPECT_FALSE(h.identity_files_are_defaults);
    EXPECT_THAT(h.identity_files, ElementsAre("/home/alice/.ssh/prod_ed25519",
                                              "/home/alice/.ssh/id_ed25519", "/keys/alice@prod"));
    EXPECT_THAT(h.certificate_files,
                ElementsAre("/home/alice/.ssh/prod-cert.pub", "/certs/all.pub"));
}

TEST(SshConfigHost, ProxyJumpHopsNoneAndProxyCommandCompetition) {
    auto cfg = parse_ok(
        "Host inner\n"
        "  ProxyJump alice@bastion1:2222,ssh://bob@bastion2,[fd00::1]:22\n"
        "Host direct\n"
        "  ProxyJump none\n"
        "Host cmd\n"
        "  ProxyCommand nc -X connect -x proxy:3128 %h %p\n"
        "Host *\n"
        "  ProxyJump jump.example.com\n");
    auto h = resolve_ok(cfg, "inner");
    ASSERT_EQ(h.proxy_jump.size(), 3u);
    EXPECT_EQ(h.proxy_jump[0], (jump_hop{"alice", "bastion1", 2222}));
    EXPECT_EQ(h.proxy_jump[1], (jump_hop{"bob", "bastion2", std::nullopt}));
    EXPECT_EQ(h.proxy_jump[2], (jump_hop{std::nullopt, "fd00::1", 22}));
    EXPECT_TRUE(resolve_ok(cfg, "direct").proxy_jump.empty());
    auto c = resolve_ok(cfg, "cmd");
    // Tokens are expanded as the command will run (%h is the HostName, here the alias).
    EXPECT_EQ(c.proxy_command, "nc -X connect -x proxy:3128 cmd 22");
    EXPECT_TRUE(c.proxy_jump.empty());  // ProxyCommand came first
    EXPECT_THAT(resolve_ok(cfg, "other").proxy_jump,
                ElementsAre(jump_hop{std::nullopt, "jump.example.com", std::nullopt}));
}

TEST(SshConfigHost, ProxyCommandTokens) {
    auto h = resolve_ok(parse_ok("Host db\n"
                                 "  HostName db.internal\n  User deploy\n  Port 2200\n"
                                 "  ProxyCommand connect %r@%h:%p via %n 100%%\n"),
                        "db");
    EXPECT_EQ(h.proxy_command, "connect deploy@db.internal:2200 via db 100%");
    // A token ProxyCommand cannot know (%d, %u are for paths) is refused at load, with the line.
    const auto bad = parse_error("Host x\n  ProxyCommand nc %d %p\n");
    EXPECT_NE(bad.find("unknown token %d"), std::string::npos) << bad;
    EXPECT_NE(bad.find("test_config:2"), std::string::npos) << bad;
    EXPECT_NE(override_error("ProxyCommand=nc %u %p").find("unknown token %u"), std::string::npos);
}

TEST(SshConfigHost, HostNameExpandsPercentH) {
    auto h = resolve_ok(parse_ok("Host *\n  HostName %h.internal.example.com\n"), "db1");
    EXPECT_EQ(h.hostname, "db1.internal.example.com");
    EXPECT_EQ(h.alias, "db1");
}

TEST(SshConfigMatch, AllHostOriginalHostUserLocalUser) {
    auto cfg = parse_ok(
        "Host short\n"
        "  HostName long.example.com\n"
        "Match host *.example.com\n"
        "  Port 1001\n"
        "Match originalhost short\n"
        "  Compression yes\n"
        "Match user root\n"
        "  IdentitiesOnly yes\n"
        "Match localuser alice\n"
        "  BatchMode yes\n"
        "Match localuser bob\n"
        "  PasswordAuthentication no\n"
        "Match all\n"
        "  LogLevel ERROR\n");
    auto h = resolve_ok(cfg, "short");
    EXPECT_EQ(h.port, 1001);  // Match host sees the HostName obtained above
    EXPECT_TRUE(h.compression);
    EXPECT_FALSE(h.identities_only);
    EXPECT_TRUE(h.batch_mode);
    EXPECT_TRUE(h.password_authentication);
    EXPECT_EQ(h.log_level, "ERROR");
    EXPECT_TRUE(resolve_ok(cfg, "x", "root").identities_only);  // -l root is visible to Match user
    EXPECT_FALSE(resolve_ok(cfg, "long.example.com").compression);
}

TEST(SshConfigMatch, NegationListsAndCombinedCriteria) {
    auto cfg = parse_ok(
        "Match host *.corp,!legacy.corp user ops\n"
        "  Port 2222\n"
        "Match !host *.corp\n"
        "  Port 3333\n");
    EXPECT_EQ(resolve_ok(cfg, "a.corp", "ops").port, 2222);
    EXPECT_EQ(resolve_ok(cfg, "a.corp", "dev").port, 22);
    EXPECT_EQ(resolve_ok(cfg, "legacy.corp", "ops").port, 22);
    EXPECT_EQ(resolve_ok(cfg, "elsewhere").port, 3333);
}

TEST(SshConfigMatch, UnsupportedCriteriaAreErrorsWithFileLine) {
    auto msg = parse_error("Host a\n  Port 1\nMatch exec \"test -f /x\"\n  Port 2\n");
    EXPECT_THAT(msg, HasSubstr("test_config:3"));
    EXPECT_THAT(msg, HasSubstr("Match 'exec' is not supported"));
    EXPECT_THAT(msg, HasSubstr("all, host, originalhost, user, localuser"));
    EXPECT_THAT(parse_error("Match canonical all\n"), HasSubstr("'canonical' is not supported"));
    EXPECT_THAT(parse_error("Match host\n"), HasSubstr("Match host needs a pattern"));
    EXPECT_THAT(parse_error("Match all host x\n"), HasSubstr("cannot be combined"));
    EXPECT_THAT(parse_error("Match\n"), HasSubstr("test_config:1: Match needs criteria"));
}

// --- overrides ---------------------------------------------------------------

TEST(SshConfigOverride, OverridesBeatTheFile) {
    auto cfg = parse_ok("Host h\n  Port 2200\n  User file\n  IdentityFile ~/.ssh/file_key\n");
    ASSERT_TRUE(cfg.add_override("Port=2300"));
    ASSERT_TRUE(cfg.add_override("user = cli"));
    ASSERT_TRUE(cfg.add_override("IdentityFile=/cli/key"));
    ASSERT_TRUE(cfg.add_override("StrictHostKeyChecking accept-new"));
    ASSERT_TRUE(cfg.add_override("Port=9999"));  // a later -o loses to an earlier one
    auto h = resolve_ok(cfg, "h");
    EXPECT_EQ(h.port, 2300);
    EXPECT_EQ(h.user, "cli");
    EXPECT_EQ(h.strict, strict_host_key_checking::accept_new);
    EXPECT_THAT(h.identity_files, ElementsAre("/cli/key", "/home/alice/.ssh/file_key"));
}

TEST(SshConfigOverride, UserAndPortFromTargetBeatFileAndOverrides) {
    auto cfg = parse_ok("Host h\n  Port 2200\n  User file\n");
    ASSERT_TRUE(cfg.add_override("Port=2300"));
    auto h = resolve_ok(cfg, "h", "target-user", 2400);
    EXPECT_EQ(h.user, "target-user");
    EXPECT_EQ(h.port, 2400);
}

TEST(SshConfigOverride, ErrorsSayWhatIsAllowed) {
    EXPECT_EQ(override_error("Foo=bar"),
              "unknown option -o Foo=bar: not an ssh_config keyword (see man 5 ssh_config)");
    auto port = override_error("Port=abc");
    EXPECT_THAT(port, HasSubstr("-o Port=abc"));
    EXPECT_THAT(port, HasSubstr("from 1 to 65535"));
    EXPECT_THAT(override_error("StrictHostKeyChecking=maybe"),
                HasSubstr("yes, ask, accept-new, no or off, got 'maybe'"));
    EXPECT_THAT(override_error("ConnectTimeout=-1"), HasSubstr("a time like 10, 30s"));
    EXPECT_THAT(override_error("Host=x"), HasSubstr("cannot be given with -o"));
    EXPECT_THAT(override_error("Include=/etc/x"), HasSubstr("cannot be given with -o"));
    EXPECT_THAT(override_error("Port="), HasSubstr("missing value"));
    EXPECT_THAT(override_error(""), HasSubstr("-o Key=Value"));
}

TEST(SshConfigOverride, IgnoredKeywordsAreAccepted) {
    ssh_config cfg;
    EXPECT_TRUE(cfg.add_override("ForwardAgent=yes"));
    EXPECT_TRUE(cfg.add_override("ProxyCommand=ssh -W %h:%p bastion"));
    EXPECT_EQ(resolve_ok(cfg, "h").proxy_command, "ssh -W h:22 bastion");  // tokens expanded
}

// --- tokens ------------------------------------------------------------------

TEST(SshConfigTokens, ExpandedInPathKeywords) {
    auto cfg = parse_ok(
        "Host h\n"
        "  HostName real.example.com\n"
        "  User bob\n"
        "  Port 2222\n"
        "  IdentityFile ~/.ssh/%r@%h:%p\n"
        "  IdentityFile %d/%u/%n/100%%\n"
        "  IdentityFile ${KEYS}/%l/%L\n"
        "  IdentityFile /cm/%C\n"
        "  IdentityAgent ~/agent.sock\n"
        "  UserKnownHostsFile ~/.ssh/kh_%n\n");
    auto h = resolve_ok(cfg, "h");
    ASSERT_EQ(h.identity_files.size(), 4u);
    EXPECT_EQ(h.identity_files[0], "/home/alice/.ssh/bob@real.example.com:2222");
    EXPECT_EQ(h.identity_files[1], "/home/alice/alice/h/100%");
    EXPECT_EQ(h.identity_files[2], "/keys/laptop.example.org/laptop");
    // %C = sha1(%l %h %p %r), as `printf laptop.example.orgreal.example.com2222bob | sha1sum`.
    EXPECT_EQ(h.identity_files[3], "/cm/32ecfa3fd26a094cd6396227963be59d919bb46b");
    EXPECT_EQ(h.identity_agent, "/home/alice/agent.sock");
    EXPECT_THAT(h.user_known_hosts_files, ElementsAre("/home/alice/.ssh/kh_h"));
}

TEST(SshConfigTokens, IdentityAgentEnvironmentFormsAreKept) {
    EXPECT_EQ(resolve_ok(parse_ok("IdentityAgent SSH_AUTH_SOCK\n"), "h").identity_agent,
              "SSH_AUTH_SOCK");
    EXPECT_EQ(resolve_ok(parse_ok("IdentityAgent $MY_SOCK\n"), "h").identity_agent, "$MY_SOCK");
}

TEST(SshConfigTokens, UnknownTokenAndUnsetVariable) {
    auto msg = parse_error("Host *\n  IdentityFile ~/.ssh/%Z\n");
    EXPECT_THAT(msg, HasSubstr("test_config:2"));
    EXPECT_THAT(msg, HasSubstr("unknown token %Z"));
    EXPECT_THAT(parse_error("HostName %p.example\n"), HasSubstr("unknown token %p"));
    EXPECT_THAT(parse_error("IdentityFile ~bob/key\n"), HasSubstr("~user paths are not supported"));
    EXPECT_THAT(parse_error("IdentityFile /k/${UNCLOSED\n"), HasSubstr("unterminated ${"));

    auto cfg = parse_ok("Host h\n  IdentityFile ${NOPE}/key\n");
    auto r = cfg.resolve("h");
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message, HasSubstr("test_config:2"));
    EXPECT_THAT(r.error().message, HasSubstr("NOPE"));
}

// --- files and Include ----------------------------------------------------------

TEST_F(SshConfigFiles, LoadDefaultWithoutConfigIsEmpty) {
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto h = resolve_ok(*cfg, "h");
    EXPECT_EQ(h.port, 22);
    EXPECT_EQ(h.identity_files[0], (home_ / ".ssh/id_ed25519").string());
}

TEST_F(SshConfigFiles, LoadDefaultReadsUserThenSystemFile) {
    write(".ssh/config", "Host h\n  Port 1111\n");
    write("etc/ssh_config", "Include extra.conf\nHost *\n  Port 2222\n  User sys\n");
    write("etc/extra.conf", "Compression yes\n");
    auto cfg = ssh_config::load_default(ctx(), (home_ / "etc/ssh_config").string());
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto h = resolve_ok(*cfg, "h");
    EXPECT_EQ(h.port, 1111);
    EXPECT_EQ(h.user, "sys");
    EXPECT_TRUE(h.compression);  // relative Include in the system file is beside it
    EXPECT_EQ(resolve_ok(*cfg, "x").port, 2222);
}

TEST_F(SshConfigFiles, LoadFileMissingIsNotFound) {
    auto cfg = ssh_config::load_file((home_ / "nope").string(), ctx());
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.error().code, core::errc::not_found);
    EXPECT_THAT(cfg.error().message, HasSubstr("nope"));
}

TEST_F(SshConfigFiles, ErrorsNameTheRealFileAndLine) {
    write(".ssh/config", "Host a\n  Port 1\n  Frobnicate yes\n");
    auto cfg = ssh_config::load_file((home_ / ".ssh/config").string(), ctx());
    ASSERT_FALSE(cfg);
    EXPECT_THAT(cfg.error().message, HasSubstr((home_ / ".ssh/config").string() + ":3"));
}

TEST_F(SshConfigFiles, IncludeGlobsRelativeToDotSshInOrder) {
    write(".ssh/config", "Include conf.d/*.conf\nHost *\n  User last\n");
    write(".ssh/conf.d/10-a.conf", "Host a\n  Port 1010\n  User from-a\n");
    write(".ssh/conf.d/20-b.conf", "Host a b\n  Port 2020\n");
    write(".ssh/conf.d/ignored.txt", "this is not a config\n");
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto a = resolve_ok(*cfg, "a");
    EXPECT_EQ(a.port, 1010);
    EXPECT_EQ(a.user, "from-a");
    auto b = resolve_ok(*cfg, "b");
    EXPECT_EQ(b.port, 2020);
    EXPECT_EQ(b.user, "last");  // the includer's Host state is restored after the include
}

TEST_F(SshConfigFiles, IncludeInsideHostBlockIsConditional) {
    write(".ssh/config", "Host work\n  Include ~/.ssh/work.conf\nHost *\n  Port 22\n");
    write(".ssh/work.conf", "User worker\nPort 4000\n");
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(resolve_ok(*cfg, "work").user, "worker");
    EXPECT_EQ(resolve_ok(*cfg, "work").port, 4000);
    EXPECT_EQ(resolve_ok(*cfg, "home").user, "alice");
    EXPECT_EQ(resolve_ok(*cfg, "home").port, 22);
}

TEST_F(SshConfigFiles, HostInsideInactiveIncludeNeverMatches) {
    write(".ssh/config", "Host nomatch\n  Include inc.conf\n");
    write(".ssh/inc.conf", "Host *\n  Port 5555\n");
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(resolve_ok(*cfg, "other").port, 22);
    EXPECT_EQ(resolve_ok(*cfg, "nomatch").port, 5555);
}

TEST_F(SshConfigFiles, IncludeWithoutMatchesIsFineErrorsInIncludedFileNameIt) {
    write(".ssh/config", "Include none-here/*\nInclude bad.conf\n");
    write(".ssh/bad.conf", "\nPort many\n");
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_FALSE(cfg);
    EXPECT_THAT(cfg.error().message, HasSubstr((home_ / ".ssh/bad.conf").string() + ":2"));
}

TEST_F(SshConfigFiles, IncludeLoopHitsDepthLimit) {
    write(".ssh/config", "Include config\n");
    auto cfg = ssh_config::load_default(ctx(), "");
    ASSERT_FALSE(cfg);
    EXPECT_THAT(cfg.error().message, HasSubstr("nested more than 16 deep"));
    EXPECT_THAT(cfg.error().message, HasSubstr(":1"));
}

TEST_F(SshConfigFiles, ParseTextResolvesRelativeIncludesInDotSsh) {
    write(".ssh/extra", "User included\n");
    auto cfg = ssh_config::parse("Include extra\n", "inline", ctx());
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(resolve_ok(*cfg, "h").user, "included");
}

// --- parse_target ----------------------------------------------------------------

TEST(SshConfigTarget, AcceptedForms) {
    struct tc {
        std::string_view in;
        target want;
    };
    const tc cases[] = {
        {"host", {std::nullopt, "host", std::nullopt}},
        {"alice@host", {"alice", "host", std::nullopt}},
        {"host:2222", {std::nullopt, "host", 2222}},
        {"alice@10.0.0.1:22", {"alice", "10.0.0.1", 22}},
        {"[::1]:2222", {std::nullopt, "::1", 2222}},
        {"bob@[fe80::1%eth0]", {"bob", "fe80::1%eth0", std::nullopt}},
        {"::1", {std::nullopt, "::1", std::nullopt}},
        {"ssh://host", {std::nullopt, "host", std::nullopt}},
        {"ssh://alice@host:2200/", {"alice", "host", 2200}},
        {"SSH://alice;fingerprint=x@[::1]:22", {"alice", "::1", 22}},
        {"first.last@corp@host", {"first.last@corp", "host", std::nullopt}},
    };
    for (const auto& c : cases) {
        auto t = parse_target(c.in);
        ASSERT_TRUE(t) << c.in << ": " << t.error().message;
        EXPECT_EQ(*t, c.want) << c.in;
    }
}

TEST(SshConfigTarget, RejectedFormsExplainTheFix) {
    struct tc {
        std::string_view in;
        std::string_view says;
    };
    const tc cases[] = {
        {"", "empty destination; write [user@]host[:port]"},
        {"alice@", "missing host in 'alice@'"},
        {":22", "missing host"},
        {"@host", "empty user name in '@host'"},
        {"host:", "invalid port '' in 'host:'"},
        {"host:abc", "invalid port 'abc' in 'host:abc': must be a number from 1 to 65535"},
        {"host:0", "invalid port '0'"},
        {"host:70000", "invalid port '70000'"},
        {"my host", "contains whitespace"},
        {"host\n", "contains whitespace"},
        {"[::1", "missing ']'"},
        {"[::1]2222", "after ']'"},
        {"ho]st", "misplaced bracket"},
        {"ssh://host/path", "has a path"},
        {"-oProxyCommand=x", "cannot start with '-'"},
    };
    for (const auto& c : cases) {
        auto t = parse_target(c.in);
        ASSERT_FALSE(t) << "accepted: " << c.in;
        EXPECT_EQ(t.error().code, core::errc::invalid_argument);
        EXPECT_THAT(t.error().message, HasSubstr(c.says)) << c.in;
    }
}

}  // namespace
}  // namespace tunnel::ssh
