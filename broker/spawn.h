// fork+exec of a sandboxed child with its fds at fixed numbers and nothing else open
// (docs/design.md#3-start-up). Pre-exec, still privileged, the child arms PDEATHSIG and
// enters a fresh, empty network namespace that the broker creates for it; the rest of
// the sandbox (privilege drop, NoNewPrivs, seccomp) the child applies to itself.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace tw::broker {

struct ChildSpec {
  std::string path;
  std::vector<std::string> args;  // argv[1..]
  std::vector<std::string> env;   // the whole environment of the child
  // (target fd number in the child, fd in the broker); targets should be 3, 4, ...
  std::vector<std::pair<int, int>> fds;
  bool new_netns = true;
  // Where the child's stderr (its log) goes; stdin and stdout are /dev/null.
  int stderr_fd = 2;
};

// Starts the child. Returns its pid once execve succeeded; any failure before exec
// (namespace, dup2, exec itself) is reported with its errno.
Result<pid_t> spawn_child(const ChildSpec& spec);

}  // namespace tw::broker
