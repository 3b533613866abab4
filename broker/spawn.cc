#include "broker/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tw::broker {
namespace {

// Stage codes reported through the exec pipe when the pre-exec child fails.
enum Stage : int { kPdeathsig = 1, kNetns, kDup, kClose, kExec, kSigmask };

const char* stage_name(int stage) {
  switch (stage) {
    case kPdeathsig: return "PR_SET_PDEATHSIG";
    case kNetns: return "unshare(CLONE_NEWNET)";
    case kDup: return "dup2";
    case kClose: return "close_range";
    case kExec: return "execve";
    case kSigmask: return "sigprocmask";
    default: return "pre-exec";
  }
}

[[noreturn]] void child_fail(int pipe_fd, int stage) {
  int msg[2] = {stage, errno};
  (void)!::write(pipe_fd, msg, sizeof msg);
  ::_exit(127);
}

}  // namespace

Result<pid_t> spawn_child(const ChildSpec& spec) {
  // Everything the child needs is prepared before fork: after it only
  // async-signal-safe calls are made.
  std::vector<std::string> argv_store;
  argv_store.push_back(spec.path);
  argv_store.insert(argv_store.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store = spec.env;
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  int max_target = 2;
  for (auto [target, source] : spec.fds) {
    if (target < 3 || source < 0) return make_error("spawn: bad fd mapping");
    max_target = std::max(max_target, target);
  }

  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return make_error(std::string("/dev/null: ") + std::strerror(errno));
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    ::close(devnull);
    return make_error(std::string("pipe2: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    ::close(devnull);
    return make_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(pipefd[0]);
    sigset_t none;
    sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) child_fail(pipefd[1], kSigmask);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(pipefd[1], kPdeathsig);
    if (::getppid() != parent) ::_exit(127);
    if (spec.new_netns && ::unshare(CLONE_NEWNET) != 0) child_fail(pipefd[1], kNetns);
    // Move every source above the target range first, so that a source that happens
    // to sit on another entry's target number is not clobbered.
    const int base = std::max(max_target + 1, 64);
    int high = base;
    for (auto [target, source] : spec.fds) {
      int moved = ::fcntl(source, F_DUPFD, high++);
      if (moved < 0) child_fail(pipefd[1], kDup);
      if (::dup2(moved, target) < 0) child_fail(pipefd[1], kDup);
    }
    if (::dup2(devnull, 0) < 0 || ::dup2(devnull, 1) < 0 ||
        (spec.stderr_fd != 2 && ::dup2(spec.stderr_fd >= 0 ? spec.stderr_fd : devnull, 2) < 0)) {
      child_fail(pipefd[1], kDup);
    }
    // The exec-error pipe must survive until execve; move it above everything.
    int errfd = ::fcntl(pipefd[1], F_DUPFD_CLOEXEC, high + 1);
    if (errfd < 0) child_fail(pipefd[1], kDup);
    if (::syscall(SYS_close_range, static_cast<unsigned>(max_target + 1),
                  static_cast<unsigned>(errfd - 1), 0) != 0 ||
        ::syscall(SYS_close_range, static_cast<unsigned>(errfd + 1), ~0U, 0) != 0) {
      child_fail(errfd, kClose);
    }
    for (auto [target, source] : spec.fds) {
      (void)source;
      int flags = ::fcntl(target, F_GETFD);
      if (flags < 0 || ::fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) != 0) child_fail(errfd, kDup);
    }
    ::execve(spec.path.c_str(), argv.data(), envp.data());
    child_fail(errfd, kExec);
  }
  ::close(pipefd[1]);
  ::close(devnull);
  int msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(pipefd[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (n == static_cast<ssize_t>(sizeof msg)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return make_error("spawn " + spec.path + ": " + stage_name(msg[0]) + ": " + std::strerror(msg[1]));
  }
  return pid;
}

}  // namespace tw::broker
