// `tunnel ui` in a real terminal (tmux) against a real `tunnel up` and sshd:
// the screen shows the link, `r` restarts it, `s` switches its transport, it
// redraws at 80x24 and larger and says so when smaller, `l` shows the
// link's log, and q, SIGTERM or the manager going away leave the terminal
// as it was.
#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link_test_support.hpp"
#include "support/tmux_pane.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test::links {
namespace {

using fwd::eventually;

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

class LinkUi : public ::testing::Test {
  protected:
    void SetUp() override {
        if (run({"tmux", "-V"}).exit_code != 0) GTEST_SKIP() << "tmux is not installed";
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto h = temp_dir::create("tunnel-ui");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        socket_path = home->file("run/control.sock");
        links_file = home->file("links.yaml");
        ASSERT_TRUE(write_text_file(
            links_file, fmt::format("links:\n"
                                    "  db:\n"
                                    "    target: root@127.0.0.1\n"
                                    "    options: {}\n"
                                    "    transports:\n"
                                    "      - {{type: command, name: socat, command: 'socat - "
                                    "TCP:%h:%p'}}\n"
                                    "      - {{type: tcp}}\n"
                                    "    keepalive: 1s\n"
                                    "    return_after: 1\n"
                                    "control: {{socket: {}}}\n",
                                    fixture_options(*sshd), socket_path)));
        start_manager();
    }
    void TearDown() override {
        if (up && up->running()) up->terminate();
    }
    void start_manager() {
        auto c = spawn_tunnel({"up", "-F", "/dev/null", links_file}, home->path(),
                              home->file("up.out"), home->file("up.err"));
        ASSERT_TRUE(c) << c.error().message;
        up.emplace(std::move(*c));
        ASSERT_TRUE(eventually([&] { return ::access(socket_path.c_str(), F_OK) == 0; }, 10s))
            << read_text_file(home->file("up.err")).value_or("");
    }
    nlohmann::json ls() {
        auto r = run_tunnel({"ls", "--control", socket_path, "--json"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json() : j;
    }
    // The pane runs: stty -g > before; tunnel ui (its pid in ui.pid); echo
    // $? > rc; stty -g > after; then an interactive shell.
    std::string write_script() {
        const auto& d = *home;
        const std::string script =
            "stty -g > " + d.file("before") + "\n" + "LC_ALL=C.UTF-8 sh -c 'echo $$ > " +
            d.file("ui.pid") + "; exec \"$0\" \"$@\"' " + shell_quote(tunnel_binary()) +
            " ui --control " + shell_quote(socket_path) + " 2> " + d.file("ui.err") + "\n" +
            "echo $? > " + d.file("rc.tmp") + "\n" + "stty -g > " + d.file("after") + "\n" + "mv " +
            d.file("rc.tmp") + " " + d.file("rc") + "\n" + "echo UI-EXITED\n" +
            "PS1='prompt> ' exec sh -i\n";
        EXPECT_TRUE(write_text_file(d.file("pane.sh"), script));
        return d.file("pane.sh");
    }
    // After the ui exited: exit code, the terminal as it was, no alternate
    // screen left, and a shell that answers.
    void expect_restored(const tmux_pane& pane, const std::string& rc) {
        auto code = wait_for_file(home->file("rc"), 10s);
        ASSERT_TRUE(code) << "tunnel ui did not exit\n" << pane.screen();
        EXPECT_EQ(*code, rc + "\n") << read_text_file(home->file("ui.err")).value_or("");
        EXPECT_EQ(read_text_file(home->file("after")).value_or("no after"),
                  read_text_file(home->file("before")).value_or("no before"));
        EXPECT_TRUE(pane.wait_for("prompt>")) << pane.screen();
        auto alt = pane.tmux({"display-message", "-p", "-t", "t", "#{alternate_on}"});
        EXPECT_EQ(alt.out, "0\n") << "the alternate screen is still on";
        EXPECT_EQ(pane.screen().find("tunnel ui  "), std::string::npos) << pane.screen();
        pane.type("echo shell-$((40+2))");
        pane.enter();
        EXPECT_TRUE(pane.wait_for("shell-42")) << pane.screen();
    }
    void press(const tmux_pane& pane, const std::string& key) {
        (void)pane.tmux({"send-keys", "-t", "t", key});
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> home;
    std::string socket_path;
    std::string links_file;
    std::optional<child_process> up;
};

TEST_F(LinkUi, ShowsTheLinkRestartsSwitchesResizesAndQuits) {
    ASSERT_TRUE(eventually(
        [&] {
            auto l = ls()["links"][0];
            return l["state"] == "up" && l["transports"][1]["state"] == "up";
        },
        15s))
        << ls().dump(2);
    // The fields `tunnel ls --json` gained for the dashboard: a score and the RTT samples.
    ASSERT_TRUE(eventually(
        [&] {
            const auto t = ls()["links"][0]["transports"][0];
            return t["score"].is_number_integer() && t["score"].get<int>() > 0 &&
                   t["score"].get<int>() <= 100 && t["rtt_samples_ms"].is_array() &&
                   !t["rtt_samples_ms"].empty();
        },
        10s))
        << ls().dump(2);
    auto events = spawn_tunnel({"events", "--control", socket_path}, home->path(),
                               home->file("events.out"), home->file("events.err"));
    ASSERT_TRUE(events) << events.error().message;

    tmux_pane pane(*home, write_script());
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(pane.wait_for("> db")) << pane.screen();
    ASSERT_TRUE(pane.wait_for("socat#0")) << pane.screen();
    EXPECT_TRUE(pane.wait_for("connected, 1 link")) << pane.screen();
    EXPECT_NE(pane.screen().find(" up "), std::string::npos) << pane.screen();
    EXPECT_NE(pane.screen().find("tcp#1"), std::string::npos) << pane.screen();

    // r: the link restarts, on screen and in `tunnel events`.
    press(pane, "r");
    EXPECT_TRUE(pane.wait_for("restarted db")) << pane.screen();
    EXPECT_TRUE(pane.wait_for(" restart")) << pane.screen();
    EXPECT_TRUE(eventually(
        [&] {
            return read_text_file(home->file("events.out"))
                       .value_or("")
                       .find("\"type\":\"restart\"") != std::string::npos;
        },
        5s));

    // s: from socat (preferred) to tcp, once both are up again.
    ASSERT_TRUE(eventually(
        [&] {
            auto l = ls()["links"][0];
            return l["transports"][0]["state"] == "up" && l["transports"][1]["state"] == "up";
        },
        15s))
        << ls().dump(2);
    press(pane, "s");
    EXPECT_TRUE(pane.wait_for("db now prefers tcp#1")) << pane.screen();
    EXPECT_TRUE(eventually([&] { return ls()["links"][0]["transport"]["index"] == 1; }, 10s))
        << ls().dump(2);
    EXPECT_TRUE(pane.wait_for("switch to tcp#1")) << pane.screen();

    // 80x24 still renders; smaller says so; larger renders again.
    ASSERT_TRUE(pane.resize(80, 24));
    EXPECT_TRUE(pane.wait_for("RTT HISTORY")) << pane.screen();
    EXPECT_TRUE(pane.wait_for("> db")) << pane.screen();
    ASSERT_TRUE(pane.resize(60, 20));
    EXPECT_TRUE(pane.wait_for("terminal too small (60x20)")) << pane.screen();
    ASSERT_TRUE(pane.resize(132, 40));
    EXPECT_TRUE(pane.wait_for("> db")) << pane.screen();
    EXPECT_EQ(pane.screen().find("terminal too small"), std::string::npos) << pane.screen();

    // l: the link's log; l again: back.
    press(pane, "l");
    EXPECT_TRUE(pane.wait_for("LOG of db")) << pane.screen();
    EXPECT_NE(pane.screen().find("restart"), std::string::npos) << pane.screen();
    press(pane, "l");
    EXPECT_TRUE(pane.wait_for("RTT HISTORY")) << pane.screen();

    press(pane, "q");
    expect_restored(pane, "0");
}

TEST_F(LinkUi, WaitsForTheManagerAndRestoresTheTerminalOnSigterm) {
    tmux_pane pane(*home, write_script());
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(pane.wait_for("> db")) << pane.screen();

    // The manager goes: the ui says so and keeps trying; it comes back.
    ASSERT_EQ(run_tunnel({"down", "--control", socket_path}).exit_code, 0);
    ASSERT_TRUE(up->wait(10s));
    EXPECT_TRUE(pane.wait_for("manager gone: reconnecting")) << pane.screen();
    start_manager();
    EXPECT_TRUE(pane.wait_for("connected to the manager again")) << pane.screen();
    EXPECT_TRUE(pane.wait_for("> db")) << pane.screen();

    auto pid = wait_for_file(home->file("ui.pid"), 5s);
    ASSERT_TRUE(pid);
    ASSERT_EQ(::kill(std::stoi(*pid), SIGTERM), 0);
    expect_restored(pane, "143");
}

}  // namespace
}  // namespace tunnel::test::links
