// Pooled sessions for other processes (docs/link.md): a real `tunnel up`
// process holds a warm session to the sshd fixture, and real `tunnel exec`
// and `tunnel run` processes hand their commands to it over the control
// socket: by link name, by a target that resolves to the link's, never for
// another target, and on their own connection when the manager is absent,
// refuses (exec_pool: false) or dies in the middle of a run. `tunnel cp`
// opens its SFTP sessions there the same way (LinkCp).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link_test_support.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/checksum.hpp"

namespace tunnel::test::links {
namespace {

using fwd::eventually;

class LinkExec : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto h = temp_dir::create("tunnel-link-exec");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        socket_path = home->file("run/control.sock");
        const auto file = home->file("links.yaml");
        // db: the fixture as root@127.0.0.1; nopool: the same server named
        // localhost (its key recorded under that name), with exec_pool: false.
        auto kh = read_text_file(sshd->known_hosts_path());
        ASSERT_TRUE(kh);
        std::string renamed = *kh;
        for (auto p = renamed.find("127.0.0.1"); p != std::string::npos;
             p = renamed.find("127.0.0.1"))
            renamed.replace(p, 9, "localhost");
        localhost_known_hosts = home->file("known_hosts_localhost");
        ASSERT_TRUE(write_text_file(localhost_known_hosts, renamed, 0600));
        std::string localhost_options = fixture_options(*sshd);
        localhost_options.replace(localhost_options.find(sshd->known_hosts_path()),
                                  sshd->known_hosts_path().size(), localhost_known_hosts);
        ASSERT_TRUE(write_text_file(
            file, fmt::format("links:\n"
                              "  db:\n"
                              "    target: root@127.0.0.1\n"
                              "    options: {}\n"
                              "    keepalive: 1s\n"
                              "  nopool:\n"
                              "    target: root@localhost\n"
                              "    options: {}\n"
                              "    keepalive: 1s\n"
                              "    exec_pool: false\n"
                              "control: {{socket: {}}}\n",
                              fixture_options(*sshd), localhost_options, socket_path)));
        start_manager();
    }
    void TearDown() override {
        if (up && up->running()) up->terminate();
    }
    void start_manager() {
        auto c = spawn_tunnel({"-v", "up", "-F", "/dev/null", home->file("links.yaml")},
                              home->path(), home->file("stdout"), home->file("stderr"));
        ASSERT_TRUE(c) << c.error().message;
        up.emplace(std::move(*c));
        ASSERT_TRUE(eventually(
            [&] {
                auto l = ls();
                return l.is_object() && l["links"][0]["state"] == "up" &&
                       l["links"][1]["state"] == "up";
            },
            15s))
            << err();
    }
    std::string err() const { return read_text_file(home->file("stderr")).value_or(""); }
    nlohmann::json ls() {
        auto r = run_tunnel({"ls", "--control", socket_path, "--json"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json() : j;
    }
    // The exec_pool counters of link `index` ({"enabled", "started", "refused"}).
    nlohmann::json pool_of(int index) { return ls()["links"][index]["exec_pool"]; }
    std::uint64_t started(int index = 0) { return pool_of(index).value("started", 0ull); }

    cli_options with_control(std::string path = "") const {
        cli_options o;
        o.env.set.push_back({"TUNNEL_CONTROL", path.empty() ? socket_path : path});
        return o;
    }
    // `tunnel exec` by link name: no ssh_config knows "db", so only the manager can run it.
    run_result exec_by_name(const std::string& name, std::vector<std::string> command,
                            cli_options o) {
        std::vector<std::string> args{"exec", "-F", "/dev/null", name, "--"};
        args.insert(args.end(), command.begin(), command.end());
        return run_tunnel(args, o);
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> home;
    std::string socket_path;
    std::string localhost_known_hosts;
    std::optional<child_process> up;
};

TEST_F(LinkExec, ByLinkNameAndByEqualTargetThroughTheManager) {
    ASSERT_TRUE(pool_of(0)["enabled"].get<bool>());
    const auto before = started();

    auto r = exec_by_name("db", {"echo out; echo err >&2; exit 3"}, with_control());
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");

    // The same destination typed as the link's target, with the fixture's own flags.
    auto t =
        run_tunnel(exec_args(*sshd, {"--json"}, {"printf", "%s|", "a b", "c"}), with_control());
    EXPECT_EQ(t.exit_code, 0) << t.err;
    auto j = nlohmann::json::parse(t.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << t.out;
    EXPECT_EQ(j["stdout"], "a b|c|");
    EXPECT_EQ(j["exit_code"], 0);
    EXPECT_EQ(started(), before + 2);  // the target's exec went through the manager too

    // stdin streams through, and a signal death is reported as it is directly.
    cli_options in = with_control();
    in.stdin_text = "line one\nline two\n";
    auto w = run_tunnel({"exec", "-F", "/dev/null", "--stdin", "-", "db", "--", "wc -l"}, in);
    EXPECT_EQ(w.exit_code, 0) << w.err;
    EXPECT_EQ(w.out, "2\n");
    auto k = exec_by_name("db", {"kill -TERM $$"}, with_control());
    EXPECT_EQ(k.exit_code, 128 + SIGTERM) << k.err;

    // --timeout cuts the command off with 124, as on a direct connection.
    auto to = run_tunnel({"exec", "-F", "/dev/null", "--timeout", "1s", "db", "--", "sleep 30"},
                         with_control());
    EXPECT_EQ(to.exit_code, 124) << to.err;
    EXPECT_GE(started(), before + 5);
}

TEST_F(LinkExec, NonMatchingTargetsAndRefusalsRunDirect) {
    const auto before = started();
    // Another name for the same server is another destination: never db's.
    // localhost is the nopool link's target: refused there (exec_pool: false), run direct.
    auto r = run_tunnel({"exec", "-F", "/dev/null", "-p", std::to_string(sshd->port()), "-i",
                         sshd->client_key_path(), "-o", "IdentitiesOnly=yes", "-o",
                         "UserKnownHostsFile=" + localhost_known_hosts, "-o",
                         "StrictHostKeyChecking=yes", "root@localhost", "--", "echo direct"},
                        with_control());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "direct\n");
    auto nopool = pool_of(1);
    EXPECT_EQ(nopool.value("started", 0ull), 0u);
    EXPECT_EQ(nopool.value("refused", 0ull), 1u);
    EXPECT_FALSE(nopool["enabled"].get<bool>());

    // A user the link does not log in as is another destination too.
    auto other = exec_args(*sshd, {}, {"id -un"});
    other[other.size() - 3] = "nobody@127.0.0.1";
    auto o = run_tunnel(other, with_control());
    EXPECT_NE(o.exit_code, 0);  // the fixture lets only root in: it really connected itself

    // No manager at that path: the link name means nothing, the target works directly.
    auto none = with_control(home->file("run/absent.sock"));
    auto n = exec_by_name("db", {"true"}, none);
    EXPECT_EQ(n.exit_code, 255) << n.err;
    auto d = run_tunnel(exec_args(*sshd, {}, {"echo ok"}), none);
    EXPECT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out, "ok\n");
    EXPECT_EQ(started(0), before);
}

TEST_F(LinkExec, RunOverAnInventoryWhoseHostIsALink) {
    const auto inv = home->file("inventory.yml");
    ASSERT_TRUE(write_text_file(
        inv, fmt::format("all:\n  hosts:\n    db: {{ansible_host: 127.0.0.1, ansible_user: root, "
                         "ansible_port: {}}}\n",
                         sshd->port())));
    const auto before = started();
    auto r =
        run_tunnel({"run", "-i", inv, "-F", "/dev/null", "--private-key", sshd->client_key_path(),
                    "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(), "-o",
                    "StrictHostKeyChecking=yes", "--json", "--", "echo via-run"},
                   with_control());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("via-run"), std::string::npos) << r.out;
    EXPECT_EQ(started(), before + 1);
}

// The manager goes away in the middle of a loop of execs: every exec still
// succeeds, the later ones on their own connections (after SIGKILL, all but
// the one that was in flight through the manager, if any).
TEST_F(LinkExec, ManagerKilledMidRunExecsFallBack) {
    for (int sig : {SIGTERM, SIGKILL}) {
        SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGKILL");
        if (sig == SIGKILL) {
            EXPECT_TRUE(up->wait(5s).has_value());
            start_manager();
        }
        const auto before = started();
        std::atomic<int> done{0};
        std::vector<run_result> results(8);
        std::thread loop([&] {
            for (std::size_t i = 0; i < results.size(); ++i) {
                results[i] = run_tunnel(exec_args(*sshd, {}, {"echo run-" + std::to_string(i)}),
                                        with_control());
                ++done;
            }
        });
        ASSERT_TRUE(eventually([&] { return done >= 3; }, 60s));
        const auto through = started() - before;
        // SIGTERM: execs in flight finish, new ones fall back; SIGKILL leaves a stale socket.
        up->signal(sig);
        loop.join();
        int lost = 0;
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (sig == SIGKILL && results[i].exit_code != 0) {
                // The one exec in flight through the manager when it was
                // killed cannot know whether its command ran: it says so and
                // is not retried (a release build often has one in flight).
                EXPECT_NE(results[i].err.find("went away while running the command"),
                          std::string::npos)
                    << i << ": " << results[i].err;
                ++lost;
                continue;
            }
            EXPECT_EQ(results[i].exit_code, 0) << i << ": " << results[i].err;
            EXPECT_EQ(results[i].out, "run-" + std::to_string(i) + "\n");
        }
        EXPECT_LE(lost, 1);
        EXPECT_GE(through, 3u);
    }
}

// The `tunnel` front (apps/tunnel/front) sends `tunnel exec` to the manager
// as a command line, and runs the whole CLI only for what the manager does
// not take. A copy of the front alone, without the CLI beside it, shows which
// path ran: through the manager it needs nothing else; a fallback reports the
// CLI missing and ran nothing.
class LinkFront : public LinkExec {
  protected:
    void SetUp() override {
        LinkExec::SetUp();
        if (HasFatalFailure()) return;
        std::filesystem::create_directories(home->file("alone/bin"));
        alone = home->file("alone/bin/tunnel");
        std::filesystem::copy_file(tunnel_binary(), alone);
    }
    run_result front(std::vector<std::string> args, const cli_options& o) const {
        return run_cli(alone, std::move(args), o);
    }
    static bool missing_cli(const run_result& r) {
        return r.exit_code == 255 && r.err.find("reinstall tunnel") != std::string::npos;
    }
    std::string alone;
};

TEST_F(LinkFront, RunsAnExecThroughTheManagerWithoutTheCli) {
    const auto before = started();
    auto r = front({"exec", "-F", "/dev/null", "db", "--", "echo out; echo err >&2; exit 3"},
                   with_control());
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");

    // The link's target typed with the fixture's flags, an argv quoted word by
    // word, --env and --cwd: read as `tunnel exec` reads them.
    auto t = front(exec_args(*sshd, {"--env", "GREETING=a b", "--cwd", "/tmp"},
                             {"printf", "%s|", "$GREETING", "c d"}),
                   with_control());
    EXPECT_EQ(t.exit_code, 0) << t.err;
    EXPECT_EQ(t.out, "$GREETING|c d|");
    auto e = front(
        exec_args(*sshd, {"--env", "GREETING=a b", "--cwd", "/tmp"}, {"echo \"$GREETING\" $(pwd)"}),
        with_control());
    EXPECT_EQ(e.out, "a b /tmp\n") << e.err;

    // A signal death as `tunnel exec` reports it; 3 MiB of output in order.
    auto k = front({"exec", "-F", "/dev/null", "db", "--", "kill -TERM $$"}, with_control());
    EXPECT_EQ(k.exit_code, 128 + SIGTERM) << k.err;
    auto big = front({"exec", "-F", "/dev/null", "db", "--", "seq 1 400000"}, with_control());
    EXPECT_EQ(big.exit_code, 0) << big.err;
    EXPECT_EQ(big.out.size(), 2'688'895u);
    EXPECT_EQ(big.out.substr(big.out.size() - 14), "399999\n400000\n");
    EXPECT_EQ(started(), before + 5);
}

TEST_F(LinkFront, WhatTheManagerDoesNotTakeRunsTheCliAndNothingElse) {
    const auto before = started();
    // Flags the pooled path leaves to the CLI, a denied command, a command line
    // that does not parse, another TUNNEL_CONFIG, no manager at all.
    for (auto args : std::vector<std::vector<std::string>>{
             {"exec", "-F", "/dev/null", "--json", "db", "--", "true"},
             {"exec", "-F", "/dev/null", "--timeout", "5s", "db", "--", "true"},
             {"exec", "-F", "/dev/null", "-t", "db", "--", "true"},
             {"exec", "-F", "/dev/null", "--sudo", "db", "--", "true"},
             {"exec", "-F", "/dev/null", "-A", "db", "--", "true"},
             {"exec", "-v", "-F", "/dev/null", "db", "--", "true"},
             {"exec", "-F", "/dev/null", "--rule", "deny:rm*", "db", "--", "rm -rf /tmp/x"},
             {"exec", "-F", "/dev/null", "--no-such-flag", "db", "--", "true"},
             {"exec", "--help"}}) {
        SCOPED_TRACE(fmt::format("{}", fmt::join(args, " ")));
        auto r = front(args, with_control());
        EXPECT_TRUE(missing_cli(r)) << r.exit_code << " " << r.err;
        EXPECT_EQ(r.out, "");
    }
    cli_options other = with_control();
    other.env.set.push_back({"TUNNEL_CONFIG", home->file("other.yaml")});
    EXPECT_TRUE(missing_cli(front({"exec", "-F", "/dev/null", "db", "--", "true"}, other)));
    EXPECT_TRUE(missing_cli(front({"exec", "-F", "/dev/null", "db", "--", "true"},
                                  with_control(home->file("run/absent.sock")))));
    EXPECT_TRUE(missing_cli(front({"--version"}, with_control())));
    EXPECT_EQ(started(), before);  // none of them ran anything

    // The real front with the CLI beside it: the same command lines work as always.
    auto v = run_tunnel({"exec", "-F", "/dev/null", "--rule", "deny:rm*", "db", "--", "rm x"},
                        with_control());
    EXPECT_EQ(v.exit_code, 2) << v.err;
    EXPECT_NE(v.err.find("denied by rule"), std::string::npos) << v.err;
    auto j =
        run_tunnel({"exec", "-F", "/dev/null", "--json", "db", "--", "echo hi"}, with_control());
    EXPECT_EQ(j.exit_code, 0) << j.err;
    EXPECT_NE(j.out.find("\"stdout\":\"hi\\n\""), std::string::npos) << j.out;
}

// The manager goes away while the front waits for the command's end: the
// front says so and exits 255, as `tunnel exec` does.
TEST_F(LinkFront, AManagerThatDiesMidCommandIsReported) {
    auto running = std::thread([&] {
        std::this_thread::sleep_for(1500ms);
        up->signal(SIGKILL);
    });
    auto r =
        front({"exec", "-F", "/dev/null", "db", "--", "echo started; sleep 30"}, with_control());
    running.join();
    EXPECT_EQ(r.exit_code, 255) << r.err;
    EXPECT_EQ(r.out, "started\n");
    EXPECT_NE(r.err.find("may have run partly"), std::string::npos) << r.err;
}

// `tunnel cp` through the manager's warm session: an SFTP subsystem channel
// opened through the control socket.
class LinkCp : public LinkExec {
  protected:
    void SetUp() override {
        LinkExec::SetUp();
        if (HasFatalFailure()) return;
        auto d = temp_dir::create("tunnel-link-cp");
        ASSERT_TRUE(d);
        files.emplace(std::move(*d));
    }
    std::uint64_t sftp_opened(int index = 0) { return pool_of(index).value("sftp_opened", 0ull); }
    std::uint64_t sftp_refused(int index = 0) { return pool_of(index).value("sftp_refused", 0ull); }
    // cp with the fixture's key and known_hosts (for root@127.0.0.1: db's target).
    std::vector<std::string> cp_args(std::vector<std::string> rest) const {
        std::vector<std::string> args{"cp"};
        auto f = strict_client_flags("-P", sshd->port(), sshd->client_key_path(),
                                     sshd->known_hosts_path());
        args.insert(args.end(), f.begin(), f.end());
        args.insert(args.end(), rest.begin(), rest.end());
        return args;
    }
    std::string make_file(const std::string& name, std::size_t size, unsigned seed) {
        std::mt19937_64 rng(seed);
        std::string data(size, '\0');
        for (std::size_t i = 0; i + 8 <= size; i += 8) {
            auto v = rng();
            std::memcpy(data.data() + i, &v, 8);
        }
        const auto path = files->file(name);
        EXPECT_TRUE(write_text_file(path, data));
        return path;
    }
    static std::string hash(const std::string& path) {
        auto h = transfer::sha256_file(path);
        return h ? *h : "error: " + h.error().message;
    }
    std::optional<temp_dir> files;
};

TEST_F(LinkCp, UpAndDownByLinkNameThroughTheManager) {
    const auto src = make_file("src.bin", 3u << 20, 7);
    const auto opened = sftp_opened();
    const auto execs = started();
    ASSERT_TRUE(std::filesystem::create_directory(files->file("far")));
    // By link name: no ssh_config knows "db", so only the manager can reach it.
    // --verify hashes on the host: a command through the manager's pooled exec.
    auto up_r =
        run_tunnel({"cp", "-F", "/dev/null", "--verify", src, "db:" + files->file("far/up.bin")},
                   with_control());
    ASSERT_EQ(up_r.exit_code, 0) << up_r.err << err();
    EXPECT_EQ(hash(files->file("far/up.bin")), hash(src));
    EXPECT_GE(sftp_opened(), opened + 1);
    EXPECT_GE(started(), execs + 1);  // sha256sum ran on the link's session

    auto down = run_tunnel(
        {"cp", "-F", "/dev/null", "db:" + files->file("far/up.bin"), files->file("back.bin")},
        with_control());
    ASSERT_EQ(down.exit_code, 0) << down.err << err();
    EXPECT_EQ(hash(files->file("back.bin")), hash(src));
    EXPECT_GE(sftp_opened(), opened + 2);

    // A recursive copy with several jobs opens its further channels there too.
    ASSERT_TRUE(std::filesystem::create_directory(files->file("tree")));
    for (int i = 0; i < 4; ++i) make_file("tree/f" + std::to_string(i), 200'000 + i, 10 + i);
    auto tree = run_tunnel({"cp", "-F", "/dev/null", "-r", "--jobs", "3", files->file("tree"),
                            "db:" + files->file("far/")},
                           with_control());
    ASSERT_EQ(tree.exit_code, 0) << tree.err << err();
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(hash(files->file("far/tree/f" + std::to_string(i))),
                  hash(files->file("tree/f" + std::to_string(i))));
    EXPECT_GE(sftp_opened(), opened + 4);
}

TEST_F(LinkCp, SyncByLinkNameThroughTheManager) {
    ASSERT_TRUE(std::filesystem::create_directory(files->file("tree")));
    for (int i = 0; i < 3; ++i) make_file("tree/f" + std::to_string(i), 100'000 + i, 20 + i);
    const auto opened = sftp_opened();
    auto r =
        run_tunnel({"sync", "-F", "/dev/null", files->file("tree/"), "db:" + files->file("synced")},
                   with_control());
    ASSERT_EQ(r.exit_code, 0) << r.err << err();
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(hash(files->file("synced/f" + std::to_string(i))),
                  hash(files->file("tree/f" + std::to_string(i))));
    EXPECT_GE(sftp_opened(), opened + 1);
}

TEST_F(LinkCp, ExecPoolFalseAndNoManagerCopyDirectly) {
    const auto src = make_file("src.bin", 100'000, 3);
    // localhost is the nopool link's target: refused there, copied on our own connection.
    auto args = cp_args({src, "root@localhost:" + files->file("direct.bin")});
    for (auto& a : args)
        if (a == "UserKnownHostsFile=" + sshd->known_hosts_path())
            a = "UserKnownHostsFile=" + localhost_known_hosts;
    auto r = run_tunnel(args, with_control());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(hash(files->file("direct.bin")), hash(src));
    EXPECT_EQ(sftp_refused(1), 1u);
    EXPECT_EQ(sftp_opened(1), 0u);

    // No manager at that path: db's target copies directly.
    const auto before = sftp_opened(0);
    auto n = run_tunnel(cp_args({src, "root@127.0.0.1:" + files->file("nomgr.bin")}),
                        with_control(home->file("run/absent.sock")));
    ASSERT_EQ(n.exit_code, 0) << n.err;
    EXPECT_EQ(hash(files->file("nomgr.bin")), hash(src));
    EXPECT_EQ(sftp_opened(0), before);
}

// The manager is killed while a copy runs through it: with --retries the copy
// reconnects on its own connection and resumes; without, it fails and the
// destination is never half-written (only the hidden temp file is there).
TEST_F(LinkCp, ManagerKilledMidCopyResumesOrFailsCleanly) {
    const auto src = make_file("big.bin", 96u << 20, 11);
    for (bool retries : {true, false}) {
        SCOPED_TRACE(retries ? "--retries 3" : "no retries");
        if (!up->running()) start_manager();
        const auto dest = files->file(retries ? "dest-r.bin" : "dest.bin");
        const auto temp =
            files->file(retries ? ".dest-r.bin.tunnel-part" : ".dest.bin.tunnel-part");
        std::vector<std::string> rest{"--inflight", "4"};
        if (retries) rest.insert(rest.end(), {"--retries", "3"});
        rest.insert(rest.end(), {src, "root@127.0.0.1:" + dest});
        run_result r;
        std::thread copy([&] { r = run_tunnel(cp_args(rest), with_control()); });
        // Kill it once part of the file is written through the manager.
        const bool midway = eventually(
            [&] {
                std::error_code ec;
                return std::filesystem::file_size(temp, ec) > (8u << 20) && !ec;
            },
            20s);
        up->signal(SIGKILL);  // at once: a `tunnel ls` first may let the copy finish
        copy.join();
        ASSERT_TRUE(midway) << "the copy ended before the manager could be killed: " << r.err;
        EXPECT_TRUE(up->wait(5s).has_value());
        if (retries) {
            EXPECT_EQ(r.exit_code, 0) << r.err;
            EXPECT_EQ(hash(dest), hash(src));
            EXPECT_FALSE(std::filesystem::exists(temp));
        } else {
            EXPECT_EQ(r.exit_code, 255) << r.err;
            EXPECT_FALSE(std::filesystem::exists(dest)) << "a half-written destination";
        }
        // It was going through the manager, and lost it.
        EXPECT_NE(r.err.find("the link manager closed the SFTP connection"), std::string::npos)
            << r.err;
    }
}

}  // namespace
}  // namespace tunnel::test::links
