#include "link/control_request.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
namespace {

std::string refused(std::string_view line) {
    auto r = parse_control_request(line);
    EXPECT_FALSE(r) << line << " should be refused";
    return r ? "" : r.error().message;
}

TEST(ControlRequest, GoodRequests) {
    auto r = parse_control_request(R"({"cmd":"ls"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->cmd, "ls");
    r = parse_control_request(R"({"cmd":"switch","link":"db","transport":"tcp","id":"a1"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->link, "db");
    EXPECT_EQ(r->transport, "tcp");
    EXPECT_EQ(r->id, "a1");
    EXPECT_EQ(to_json(*r)["transport"], "tcp");
    EXPECT_TRUE(parse_control_request(R"({"cmd":"status","link":"db","id":3})"));
    EXPECT_TRUE(parse_control_request(R"({"cmd":"switch","link":"db","transport":"0"})"));
}

TEST(ControlRequest, BadRequestsSayWhatIsWrong) {
    EXPECT_NE(refused("").find("not a JSON object"), std::string::npos);
    EXPECT_NE(refused("{").find("not a JSON object"), std::string::npos);
    EXPECT_NE(refused("\"ls\"").find("must be a JSON object"), std::string::npos);
    EXPECT_NE(refused("{}").find("missing \"cmd\""), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"reboot"})").find("unknown cmd"), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"ls","link":"db"})").find("takes no \"link\""), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"restart"})").find("needs \"link\""), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"status","link":"a b"})").find("not a link name"),
              std::string::npos);
    EXPECT_NE(
        refused(R"({"cmd":"switch","link":"db","transport":"x/y"})").find("not a transport name"),
        std::string::npos);
    EXPECT_NE(
        refused(R"({"cmd":"status","link":"db","transport":"t"})").find("takes no \"transport\""),
        std::string::npos);
    EXPECT_NE(refused(R"({"cmd":["ls"]})").find("must be a string"), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"ls","id":1.5})").find("\"id\" must be"), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"ls","id":")" + std::string(200, 'x') + "\"}").find("longer"),
              std::string::npos);
    EXPECT_NE(refused(std::string(20'000, ' ')).find("longer than"), std::string::npos);
    EXPECT_NE(refused(std::string(100, '{')).find("nested deeper"), std::string::npos);
    // Brackets inside strings are not nesting.
    EXPECT_NE(refused(R"({"cmd":"[[[[[[[[[[[[[[[[[[[["})").find("unknown cmd"), std::string::npos);
}

TEST(ControlRequest, ErrorLineIsValidJsonEvenForBadBytes) {
    auto line = error_line("bad \xff byte", 5);
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_FALSE(j["ok"].get<bool>());
    EXPECT_EQ(j["id"], 5);
}

}  // namespace
}  // namespace tunnel::link

namespace tunnel::link {
namespace {

TEST(ControlRequest, ExecNamesALinkOrADestinationAndACommand) {
    auto r = parse_control_request(R"({"cmd":"exec","link":"db","command":"uptime"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->link, "db");
    EXPECT_EQ(r->command, "uptime");
    r = parse_control_request(
        R"({"cmd":"exec","destination":"root@127.0.0.1:2222","link":"db","command":"true"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->destination, "root@127.0.0.1:2222");
    EXPECT_EQ(to_json(*r)["command"], "true");

    EXPECT_NE(refused(R"({"cmd":"exec","link":"db"})").find("needs \"command\""),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","command":"true"})").find("needs \"link\""),
              std::string::npos);
    EXPECT_NE(
        refused(R"({"cmd":"exec","destination":"host","command":"true"})").find("user@host:port"),
        std::string::npos);
    EXPECT_NE(
        refused(R"({"cmd":"exec","destination":"a@b c","command":"true"})").find("user@host:port"),
        std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","link":"a/b","command":"true"})").find("not a link name"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","link":"db","command":"a\u0000b"})").find("NUL"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"ls","command":"true"})").find("takes no"), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","link":"db","command":"x","pty":true})").find("unknown key"),
              std::string::npos);
}

// The `tunnel` front's form: the words after `tunnel exec`, the caller's cwd and env.
TEST(ControlRequest, ExecMayCarryACommandLineWithCwdAndEnv) {
    auto r = parse_control_request(
        R"({"cmd":"exec","args":["db","--","uptime"],"cwd":"/home/u","env":{"HOME":"/home/u","A":""}})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->from_args);
    EXPECT_EQ(r->args, (std::vector<std::string>{"db", "--", "uptime"}));
    EXPECT_EQ(r->cwd, "/home/u");
    EXPECT_EQ(r->env.at("HOME"), "/home/u");
    EXPECT_EQ(r->env.at("A"), "");
    EXPECT_TRUE(r->destination.empty());

    EXPECT_NE(refused(R"({"cmd":"exec","args":[],"cwd":"/"})").find("\"args\" is empty"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db",1],"cwd":"/"})").find("array of strings"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":"db","cwd":"/"})").find("array of strings"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db"],"cwd":"rel"})").find("absolute path"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db"]})").find("absolute path"), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db"],"cwd":"/","env":{"A=B":"x"}})")
                  .find("no '=' or NUL"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db"],"cwd":"/","env":{"A":1}})").find("\"env\""),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["d\u0000b"],"cwd":"/"})").find("NUL"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","args":["db"],"cwd":"/","command":"x","link":"db"})")
                  .find("takes no link, destination, command"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"sftp","args":["db"],"cwd":"/"})").find("only exec"),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"ls","args":["db"]})").find("\"args\""), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"exec","link":"db","command":"x","cwd":"/"})")
                  .find("go with \"args\" only"),
              std::string::npos);
}

TEST(ControlRequest, SftpNamesALinkOrADestinationAndNoCommand) {
    auto r = parse_control_request(R"({"cmd":"sftp","link":"db","destination":"u@h:22"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->cmd, "sftp");
    EXPECT_EQ(r->link, "db");
    EXPECT_EQ(r->destination, "u@h:22");
    EXPECT_NE(refused(R"({"cmd":"sftp"})").find("sftp needs \"link\""), std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"sftp","link":"db","command":"rm -rf /"})").find("no \"command\""),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"sftp","link":"db","transport":"tcp"})").find("no \"transport\""),
              std::string::npos);
    EXPECT_NE(refused(R"({"cmd":"sftp","destination":"nohost"})").find("user@host:port"),
              std::string::npos);
}

}  // namespace
}  // namespace tunnel::link
