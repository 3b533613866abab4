// What install() leaves behind, seen from outside (as `tailwarden audit` sees it) and
// from a thread that existed before the filter (TSYNC).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/policy/sandbox_child.h"

namespace tw::policy {
namespace {

std::string status_field(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) == 0) {
      auto v = line.substr(name.size() + 1);
      return v.substr(v.find_first_not_of(" \t"));
    }
  }
  return {};
}

class Install : public ::testing::TestWithParam<ProcessRole> {};

TEST_P(Install, ChildShowsNoNewPrivsAndAFilterInProcStatus) {
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    testing::enter_sandbox(GetParam());
    char byte = 1;
    (void)!::write(ready[1], &byte, 1);
    (void)!::read(release[0], &byte, 1);  // stay alive, sandboxed, until looked at
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  EXPECT_EQ(status_field(child, "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(child, "Seccomp"), "2");
  EXPECT_EQ(status_field(child, "Seccomp_filters"), "1");
  ASSERT_EQ(::write(release[1], &byte, 1), 1);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);
}

// A thread started before install() is covered too, so a child may load its filter
// after its event loop threads exist.
TEST_P(Install, ThreadStartedBeforeInstallIsFilteredToo) {
  EXPECT_EXIT(
      {
        std::atomic<bool> go{false};
        std::thread early([&] {
          while (!go.load()) std::this_thread::yield();
          (void)::socket(AF_INET, SOCK_DGRAM, 0);
        });
        testing::enter_sandbox(GetParam());
        go = true;
        early.join();
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGSYS), "");
}

INSTANTIATE_TEST_SUITE_P(Roles, Install,
                         ::testing::Values(ProcessRole::kNetproc, ProcessRole::kDataproc,
                                           ProcessRole::kCtlproc, ProcessRole::kExitproc),
                         testing::role_param_name);

}  // namespace
}  // namespace tw::policy
