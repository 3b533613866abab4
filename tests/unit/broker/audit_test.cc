#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/audit.h"
#include "broker/spawn.h"

namespace tw::broker {
namespace {

TEST(AuditParseTest, ProcStatusFieldsAreRead) {
  auto st = parse_proc_status(
      "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nCapInh:\t0\n"
      "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n"
      "CapAmb:\t0\nNoNewPrivs:\t1\nSeccomp:\t2\n");
  ASSERT_TRUE(st.ok);
  EXPECT_EQ(st.uid[0], 1000);
  EXPECT_EQ(st.cap_bnd, 0x1ffffffffffULL);
  EXPECT_EQ(st.seccomp, 2);
  EXPECT_FALSE(parse_proc_status("Uid:\t0 0 0 0\n").ok) << "a truncated status is not ok";
}

TEST(AuditParseTest, WritableExecutableMappingIsFound) {
  std::string off;
  EXPECT_FALSE(maps_have_writable_exec("55d0-55d1 r-xp 0 08:01 1 /bin/x\n55d2-55d3 rw-p 0 0 0\n", &off));
  EXPECT_TRUE(maps_have_writable_exec("7f00-7f01 rwxp 0 00:00 0\n", &off));
  EXPECT_NE(off.find("rwxp"), std::string::npos);
}

class AuditLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: spawns a child that drops to nobody";
  }
  void TearDown() override {
    if (ctl_[0] >= 0) ::close(ctl_[0]);
    if (pid_ > 0) {
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  std::vector<AuditRow> run(const std::string& faults) {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl_), 0);
    ChildSpec spec;
    spec.path = TW_AUDIT_FIXTURE;
    spec.args = {faults};
    spec.fds = {{3, ctl_[1]}};
    auto pid = spawn_child(spec);
    EXPECT_TRUE(pid.ok()) << pid.error();
    pid_ = *pid;
    ::close(ctl_[1]);
    char buf[16];
    EXPECT_GT(::read(ctl_[0], buf, sizeof buf), 0) << "fixture did not become ready";
    struct stat sb {};
    ::fstat(ctl_[0], &sb);  // a socketpair's ends share nothing; use the child's end inode
    ExpectedFds exp;
    struct stat peer {};
    std::string path = "/proc/" + std::to_string(pid_) + "/fd/3";
    ::stat(path.c_str(), &peer);
    exp.inodes.insert(peer.st_ino);
    return audit_child("fixture", pid_, getpid(), exp, false);
  }
  static bool passed(const std::vector<AuditRow>& rows, const std::string& check) {
    for (const auto& r : rows) {
      if (r.check == check) return r.pass;
    }
    ADD_FAILURE() << "no row " << check;
    return false;
  }
  int ctl_[2] = {-1, -1};
  pid_t pid_ = -1;
};

TEST_F(AuditLiveTest, FullySandboxedChildPassesEveryRow) {
  auto rows = run("");
  for (const auto& r : rows) EXPECT_TRUE(r.pass) << r.check << ": " << r.detail;
  EXPECT_NE(format_audit_table(rows).find("audit: PASS"), std::string::npos);
}

TEST_F(AuditLiveTest, ChildStillRootFailsIdentityAndCapabilityRows) {
  auto rows = run("keep-root");
  EXPECT_FALSE(passed(rows, "uid is not 0"));
  EXPECT_FALSE(passed(rows, "effective capabilities empty"));
  EXPECT_TRUE(passed(rows, "NoNewPrivs"));
  EXPECT_NE(format_audit_table(rows).find("audit: FAIL"), std::string::npos);
}

TEST_F(AuditLiveTest, ChildWithoutSeccompFails) {
  EXPECT_FALSE(passed(run("no-seccomp"), "seccomp filter mode"));
}

TEST_F(AuditLiveTest, UnexpectedInetSocketIsCaught) {
  auto rows = run("extra-udp");
  EXPECT_FALSE(passed(rows, "open fds are exactly the expected ones"));
  EXPECT_FALSE(passed(rows, "no inet socket"));
}

TEST_F(AuditLiveTest, WritableExecutableMappingIsCaught) {
  EXPECT_FALSE(passed(run("wx-mapping"), "no writable+executable mapping"));
}

}  // namespace
}  // namespace tw::broker
