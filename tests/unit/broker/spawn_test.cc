#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "broker/spawn.h"

namespace tw::broker {
namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(SpawnTest, ChildSeesOnlyItsFixedFds) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  int stray = ::dup(0);  // an fd the child must not inherit
  ASSERT_GE(stray, 0);
  ChildSpec spec;
  spec.path = "/bin/sh";
  spec.args = {"-c", "ls /proc/self/fd >&3; readlink /proc/self/fd/0 >&3"};
  spec.fds = {{3, out[1]}};
  spec.new_netns = false;
  auto pid = spawn_child(spec);
  ASSERT_TRUE(pid.ok()) << pid.error();
  ::close(out[1]);
  std::string listing = read_all(out[0]);
  ::close(out[0]);
  ::close(stray);
  EXPECT_EQ(wait_exit(*pid), 0);
  // 0-2 are stdio (stdin /dev/null), 3 is ours, and ls itself holds one directory fd.
  std::istringstream in(listing);
  std::string word;
  int count = 0;
  while (in >> word && word != "/dev/null") {
    EXPECT_NE(std::stoi(word), stray) << "the stray fd leaked into the child";
    ++count;
  }
  EXPECT_EQ(word, "/dev/null") << listing;
  EXPECT_EQ(count, 5) << listing;
}

TEST(SpawnTest, ExecFailureIsReportedWithErrno) {
  ChildSpec spec;
  spec.path = "/nonexistent/tailwarden-netproc";
  spec.new_netns = false;
  auto pid = spawn_child(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().find("execve"), std::string::npos) << pid.error();
  EXPECT_NE(pid.error().find("No such file"), std::string::npos) << pid.error();
}

TEST(SpawnTest, ChildGetsAnEmptyNetworkNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  ChildSpec spec;
  spec.path = "/bin/sh";
  spec.args = {"-c", "readlink /proc/self/ns/net >&3; ls /sys/class/net >&3"};
  spec.fds = {{3, out[1]}};
  auto pid = spawn_child(spec);
  ASSERT_TRUE(pid.ok()) << pid.error();
  ::close(out[1]);
  std::string got = read_all(out[0]);
  ::close(out[0]);
  EXPECT_EQ(wait_exit(*pid), 0);
  char ours[64] = {};
  ASSERT_GT(readlink("/proc/self/ns/net", ours, sizeof ours - 1), 0);
  EXPECT_EQ(got.find(ours), std::string::npos) << "child shares the broker's namespace: " << got;
  // /sys/class/net reflects the mounting namespace, so check the interface list via ip instead
  // when available; the namespace id difference above is the decisive check.
}

}  // namespace
}  // namespace tw::broker
