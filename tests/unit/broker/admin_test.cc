#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <thread>

#include "broker/admin_server.h"

namespace tw::broker {
namespace {

TEST(AdminRequestTest, ValidRequestsParse) {
  auto r = parse_admin_request(R"({"cmd":"ping","peer":"b","count":3})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->cmd, AdminCommand::kPing);
  EXPECT_EQ(r->peer, "b");
  EXPECT_EQ(r->count, 3u);
  EXPECT_TRUE(parse_admin_request(R"({"cmd":"status"})").ok());
  EXPECT_TRUE(parse_admin_request(R"({"cmd":"endpoints","watch":true})")->watch);
}

TEST(AdminRequestTest, BadRequestsGetPreciseErrors) {
  EXPECT_EQ(parse_admin_request("status").error(), "request is not a JSON object");
  EXPECT_EQ(parse_admin_request(R"({"cmd":"reboot"})").error(), "unknown command \"reboot\"");
  EXPECT_EQ(parse_admin_request(R"({"cmd":"status","x":1})").error(), "status: unknown field \"x\"");
  EXPECT_EQ(parse_admin_request(R"({"cmd":"ping"})").error(), "ping: missing \"peer\"");
  EXPECT_EQ(parse_admin_request(R"({"cmd":"ping","peer":"b","count":-1})").error(),
            "ping: \"count\" must be an integer 0..1000");
  EXPECT_EQ(parse_admin_request(R"({"cmd":"netmap_apply"})").error(), "netmap_apply: missing \"path\"");
}

TEST(AdminPeerTest, OnlyRootAndAdminGroupAreAllowed) {
  EXPECT_TRUE(admin_peer_allowed({1, 0, 0}, std::nullopt));
  EXPECT_FALSE(admin_peer_allowed({1, 1000, 1000}, std::nullopt));
  EXPECT_TRUE(admin_peer_allowed({1, 1000, 4242}, gid_t{4242}));
  EXPECT_FALSE(admin_peer_allowed({1, 1000, 1000}, gid_t{4242}));
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tw-admin-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/admin.sock";
    server_ = std::make_unique<AdminServer>(
        io_, path_, std::nullopt,
        [](const AdminRequest& req, std::shared_ptr<AdminResponder> r) {
          r->send({{"ok", true}, {"cmd", admin_command_name(req.cmd)}});
          r->finish();
        },
        metrics_);
    ASSERT_TRUE(server_->start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    io_.stop();
    thread_.join();
    server_.reset();
    ::rmdir(dir_.c_str());
  }
  static std::string roundtrip(const std::string& path, const std::string& line) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return "connect failed";
    }
    (void)!::write(fd, line.data(), line.size());
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
  }
  boost::asio::io_context io_;
  MetricsRegistry metrics_;
  std::unique_ptr<AdminServer> server_;
  std::thread thread_;
  std::string dir_, path_;
};

TEST_F(AdminServerTest, RootGetsAnAnswerPerLine) {
  EXPECT_EQ(roundtrip(path_, "{\"cmd\":\"status\"}\n"), "{\"cmd\":\"status\",\"ok\":true}\n");
}

TEST_F(AdminServerTest, MalformedRequestIsAnsweredWithErrorAndCounted) {
  EXPECT_EQ(roundtrip(path_, "{\"cmd\":1}\n"), "{\"error\":\"missing string field \\\"cmd\\\"\",\"ok\":false}\n");
  EXPECT_EQ(metrics_.value("admin_bad_requests_total"), 1u);
}

TEST_F(AdminServerTest, SocketIsGroupOnlyAndOutsidersAreShutOut) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ::chmod(dir_.c_str(), 0755);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    std::string got = roundtrip(path_, "{\"cmd\":\"status\"}\n");
    _exit(got.find("\"ok\":true") == std::string::npos ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "an outsider got a successful answer";
}

// The socket's mode is the first gate; the credential check behind it must hold on
// its own (a widened mode, a mistaken drop-in): an outsider is answered "permission
// denied", counted, and logged with its uid, gid and pid.
TEST_F(AdminServerTest, CredentialCheckRefusesAndLogsOutsidersEvenOnAWideOpenSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  auto log = std::make_shared<std::ostringstream>();
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*log)));
  ::chmod(dir_.c_str(), 0755);
  ::chmod(path_.c_str(), 0666);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    ::signal(SIGPIPE, SIG_IGN);  // the broker may close before our request is written
    std::string got = roundtrip(path_, "{\"cmd\":\"status\"}\n");
    _exit(got == "{\"ok\":false,\"error\":\"permission denied\"}\n" ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  spdlog::default_logger()->flush();
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the outsider was not refused with \"permission denied\"";
  EXPECT_EQ(metrics_.value("admin_refused_total"), 1u);
  EXPECT_NE(log->str().find("admin: refused connection from uid 65534 gid 65534 pid " + std::to_string(pid)),
            std::string::npos)
      << log->str();
}

}  // namespace
}  // namespace tw::broker
