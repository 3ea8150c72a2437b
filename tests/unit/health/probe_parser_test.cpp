// probe_parser: well-formed output, and output a hostile or broken host
// could send (garbage numbers, lies, repeats, huge lines, truncation).
#include "health/probe_parser.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "health/probe_script.hpp"

namespace tunnel::health {
namespace {

const std::string good =
    "tunnel-health 1\n"
    "time 1765040000.250000000\n"
    "cpus 4\n"
    "loadavg 0.52 1.40 0.31 1/234 5678\n"
    "mem MemTotal: 16000000 kB\n"
    "mem MemFree: 1000000 kB\n"
    "mem MemAvailable: 8000000 kB\n"
    "mem Buffers: 100 kB\n"
    "mem Cached: 200 kB\n"
    "mem SwapTotal: 2000000 kB\n"
    "mem SwapFree: 1500000 kB\n"
    "df /dev/vda1 1000000 600000 300000 67% /\n"
    "df tmpfs 500000 10 499990 1% /run\n"
    "df /dev/vda1 1000000 600000 300000 67% /etc/hosts\n"
    "df /dev/vdb 2000000 100000 1900000 5% /srv/my data\n"
    "df overlay 1000000 500000 500000 50% /var/lib/docker/overlay2/x/merged\n"
    "df /dev/loop3 60000 60000 0 100% /snap/core/1\n"
    "mnt /dev/vda1 / ext4 rw 0 0\n"
    "mnt tmpfs /run tmpfs rw 0 0\n"
    "mnt /dev/vda1 /etc/hosts ext4 rw 0 0\n"
    "mnt /dev/vdb /srv/my\\040data xfs rw 0 0\n"
    "mnt overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
    "mnt /dev/loop3 /snap/core/1 squashfs ro 0 0\n"
    "systemd 0\n"
    "unit nginx.service loaded failed failed A high performance web server\n"
    "unit backup@daily.timer loaded failed failed Backup\n"
    "units 2\n"
    "end\n";

host_sample parse_ok(const std::string& text) {
    auto s = parse_probe(text);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? *s : host_sample{};
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
    auto p = text.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) text.replace(p, from.size(), to);
    return text;
}

TEST(HealthProbeParser, ReadsEveryFactOfAWellFormedAnswer) {
    auto s = parse_ok(good);
    EXPECT_TRUE(s.problems.empty()) << s.problems.front();
    ASSERT_TRUE(s.host_time);
    EXPECT_DOUBLE_EQ(*s.host_time, 1765040000.25);
    EXPECT_FALSE(s.host_time_whole_seconds);
    EXPECT_EQ(s.cpus, 4u);
    ASSERT_TRUE(s.load);
    EXPECT_DOUBLE_EQ(s.load->one, 0.52);
    EXPECT_DOUBLE_EQ(s.load->five, 1.40);
    EXPECT_DOUBLE_EQ(s.load->fifteen, 0.31);
    ASSERT_TRUE(s.memory);
    EXPECT_EQ(s.memory->total_bytes, 16000000ull * 1024);
    EXPECT_EQ(s.memory->available_bytes, 8000000ull * 1024);
    EXPECT_FALSE(s.memory->available_estimated);
    EXPECT_DOUBLE_EQ(s.memory->available_percent(), 50.0);
    EXPECT_EQ(s.memory->swap_free_bytes, 1500000ull * 1024);
    // tmpfs and squashfs are left out, the bind mount of / is the same filesystem.
    ASSERT_TRUE(s.mounts);
    ASSERT_EQ(s.mounts->size(), 3u);
    EXPECT_EQ((*s.mounts)[0].mount, "/");
    EXPECT_EQ((*s.mounts)[0].fstype, "ext4");
    EXPECT_EQ((*s.mounts)[0].used_bytes, 600000ull * 1024);
    EXPECT_NEAR((*s.mounts)[0].used_percent(), 66.67, 0.01);
    EXPECT_EQ((*s.mounts)[1].mount, "/srv/my data");
    EXPECT_EQ((*s.mounts)[1].fstype, "xfs");
    EXPECT_EQ((*s.mounts)[2].fstype, "overlay");
    EXPECT_TRUE(s.systemd);
    ASSERT_TRUE(s.units);
    EXPECT_EQ(s.units->count, 2u);
    EXPECT_EQ(s.units->names, (std::vector<std::string>{"nginx.service", "backup@daily.timer"}));
}

TEST(HealthProbeParser, NoSystemdIsUnknownNotAFailure) {
    auto s = parse_ok(replace(replace(replace(replace(good, "systemd 0\n", "systemd none\n"),
                                              "unit nginx.service loaded failed failed A high "
                                              "performance web server\n",
                                              ""),
                                      "unit backup@daily.timer loaded failed failed Backup\n", ""),
                              "units 2\n", ""));
    EXPECT_TRUE(s.problems.empty());
    EXPECT_FALSE(s.systemd);
    EXPECT_FALSE(s.units);
    EXPECT_EQ(s.units_unknown_why, "no systemd on the host");

    auto failed = parse_ok(replace(good, "systemd 0\n", "systemd 1\n"));
    EXPECT_TRUE(failed.systemd);
    EXPECT_FALSE(failed.units);
    EXPECT_NE(failed.units_unknown_why.find("exited with 1"), std::string::npos);
}

TEST(HealthProbeParser, DateWithoutNanosecondsGivesWholeSeconds) {
    for (const char* t : {"time 1765040000.N\n", "time 1765040000.%N\n", "time 1765040000\n"}) {
        auto s = parse_ok(replace(good, "time 1765040000.250000000\n", t));
        ASSERT_TRUE(s.host_time) << t;
        EXPECT_DOUBLE_EQ(*s.host_time, 1765040000.0);
        EXPECT_TRUE(s.host_time_whole_seconds) << t;
        EXPECT_TRUE(s.problems.empty()) << t;
    }
    auto none = parse_ok(replace(good, "time 1765040000.250000000\n", "time \n"));
    EXPECT_FALSE(none.host_time);
}

TEST(HealthProbeParser, GarbledNumbersDropTheFactAndSayWhy) {
    struct garble {
        std::string from, to, problem;
    };
    const std::vector<garble> cases{
        {"loadavg 0.52 1.40 0.31", "loadavg -1 1.40 0.31", "loadavg"},
        {"loadavg 0.52 1.40 0.31", "loadavg nan inf 1e308", "loadavg"},
        {"loadavg 0.52 1.40 0.31", "loadavg 0x10 1.40 0.31", "loadavg"},
        {"loadavg 0.52 1.40 0.31", "loadavg 99999999999999999999 1 1", "loadavg"},
        {"loadavg 0.52 1.40 0.31", "loadavg 0.52", "loadavg"},
        {"cpus 4", "cpus 0", "cpus"},
        {"cpus 4", "cpus -4", "cpus"},
        {"cpus 4", "cpus 4294967297", "cpus"},
        {"time 1765040000.250000000", "time 99999999999999999999999", "time"},
        {"time 1765040000.250000000", "time 12", "time"},
        {"mem MemTotal: 16000000 kB", "mem MemTotal: 18446744073709551615 kB", "MemTotal"},
        {"mem MemTotal: 16000000 kB", "mem MemTotal: lots kB", "MemTotal"},
        {"mem MemAvailable: 8000000 kB", "mem MemAvailable: 99000000 kB", "more than MemTotal"},
        {"mem SwapFree: 1500000 kB", "mem SwapFree: 2500000 kB", "SwapFree"},
        {"df /dev/vdb 2000000 100000 1900000 5%", "df /dev/vdb 2000000 3000000 1900000 5%",
         "more than the size"},
        {"df /dev/vdb 2000000 100000 1900000 5%", "df /dev/vdb -2 x 1900000 5%", "df"},
        {"unit nginx.service", "unit nginx$(reboot).service", "not a systemd unit name"},
        {"units 2", "units many", "units"},
        {"units 2", "units 7", "counted"},
    };
    for (const auto& c : cases) {
        auto s = parse_ok(replace(good, c.from, c.to));
        ASSERT_FALSE(s.problems.empty()) << c.to;
        bool named = false;
        for (const auto& p : s.problems) named = named || p.find(c.problem) != std::string::npos;
        EXPECT_TRUE(named) << c.to << " -> " << s.problems.front();
    }
    // The dropped fact is absent, never a made-up value.
    EXPECT_FALSE(parse_ok(replace(good, "loadavg 0.52", "loadavg -0.52")).load);
    EXPECT_FALSE(parse_ok(replace(good, "cpus 4", "cpus 0")).cpus);
    EXPECT_FALSE(
        parse_ok(replace(good, "mem MemAvailable: 8000000", "mem MemAvailable: 99000000")).memory);
    EXPECT_FALSE(parse_ok(replace(good, "units 2", "units 7")).units);
}

TEST(HealthProbeParser, RepeatedFactsAreRejectedNotPickedFrom) {
    auto s = parse_ok(replace(good, "cpus 4\n", "cpus 4\ncpus 64\n"));
    EXPECT_FALSE(s.problems.empty());
    EXPECT_FALSE(s.cpus) << "neither value is believed";
    auto m = parse_ok(replace(good, "mem MemAvailable: 8000000 kB\n",
                              "mem MemAvailable: 8000000 kB\nmem MemAvailable: 1 kB\n"));
    EXPECT_FALSE(m.problems.empty());
    EXPECT_TRUE(!m.memory || m.memory->available_estimated)
        << "a repeated MemAvailable must not be believed";
}

TEST(HealthProbeParser, NotTheProbesOutputIsAnError) {
    EXPECT_FALSE(parse_probe(""));
    EXPECT_FALSE(parse_probe("hello\nworld\n"));
    EXPECT_FALSE(parse_probe("tunnel-health 2\nend\n"));
    auto big = parse_probe(good + std::string(max_probe_output, 'x'));
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message.find("more than"), std::string::npos);
    // A few lines a shell startup file printed before the header are skipped.
    auto motd = parse_probe("Welcome!\n\n" + good);
    ASSERT_TRUE(motd);
    EXPECT_TRUE(motd->problems.empty());
}

TEST(HealthProbeParser, CutShortOutputIsAProblem) {
    auto s = parse_ok(good.substr(0, good.find("systemd 0")));
    ASSERT_FALSE(s.problems.empty());
    EXPECT_NE(s.problems.back().find("end"), std::string::npos);
    EXPECT_TRUE(s.load) << "what came before the cut is still read";
    auto after = parse_ok(good + "cpus 1\n");
    EXPECT_FALSE(after.problems.empty());
}

TEST(HealthProbeParser, OversizedLinesAndListsAreBounded) {
    auto long_line = parse_ok(replace(good, "cpus 4\n", "cpus " + std::string(100000, '4') + "\n"));
    EXPECT_FALSE(long_line.cpus);
    EXPECT_FALSE(long_line.problems.empty());

    std::string many;
    for (int i = 0; i < 5000; ++i)
        many += "df /dev/x" + std::to_string(i) + " 100 1 99 1% /m" + std::to_string(i) + "\n";
    auto lots = parse_ok(replace(good, "mnt /dev/vda1 / ext4", many + "mnt /dev/vda1 / ext4"));
    ASSERT_TRUE(lots.mounts);
    EXPECT_LE(lots.mounts->size(), max_df_lines);
    EXPECT_LE(lots.problems.size(), 20u);

    std::string units;
    for (int i = 0; i < 500; ++i) units += "unit u" + std::to_string(i) + ".service x\n";
    auto u = parse_ok(replace(good, "units 2\n", units + "units 502\n"));
    EXPECT_FALSE(u.units) << "more unit lines than the probe ever prints";

    // Control characters in names never reach the output.
    auto ctl = parse_ok(replace(good, "/srv/my data", "/srv/\x1b[2Jevil"));
    ASSERT_TRUE(ctl.mounts);
    for (const auto& m : *ctl.mounts) EXPECT_EQ(m.mount.find('\x1b'), std::string::npos);
}

TEST(HealthProbeParser, RandomBytesNeverCrashOrInventValues) {
    std::mt19937 rng(42);
    for (int round = 0; round < 2000; ++round) {
        std::string text = good;
        const int flips = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < flips; ++i) text[rng() % text.size()] = static_cast<char>(rng() % 256);
        if (rng() % 4 == 0) text.resize(rng() % text.size());
        auto s = parse_probe(text);
        if (!s) continue;
        if (s->load) {
            EXPECT_GE(s->load->one, 0);
            EXPECT_LE(s->load->fifteen, 1e6);
        }
        if (s->memory) {
            EXPECT_LE(s->memory->available_bytes, s->memory->total_bytes);
        }
        if (s->mounts)
            for (const auto& m : *s->mounts) {
                EXPECT_LE(m.used_bytes, m.size_bytes);
                EXPECT_GE(m.used_percent(), 0);
                EXPECT_LE(m.used_percent(), 100);
            }
    }
}

// The real script under this machine's /bin/sh, read by the parser: every
// fact Linux has is there and plausible.
TEST(HealthProbeScript, RunsUnderShAndParsesCleanly) {
    std::string cmd = "sh -c '";
    for (char c : probe_script()) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += "'";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    ASSERT_EQ(::pclose(p), 0) << out;
    auto s = parse_probe(out);
    ASSERT_TRUE(s) << s.error().message << "\n" << out;
    EXPECT_TRUE(s->problems.empty()) << s->problems.front() << "\n" << out;
    ASSERT_TRUE(s->host_time);
    EXPECT_NEAR(*s->host_time, static_cast<double>(std::time(nullptr)), 5.0);
    ASSERT_TRUE(s->cpus);
    EXPECT_GE(*s->cpus, 1u);
    EXPECT_TRUE(s->load);
    ASSERT_TRUE(s->memory);
    EXPECT_GT(s->memory->total_bytes, 0u);
    ASSERT_TRUE(s->mounts);
    bool root = false;
    for (const auto& m : *s->mounts) root = root || m.mount == "/";
    EXPECT_TRUE(root) << out;
}

}  // namespace
}  // namespace tunnel::health
