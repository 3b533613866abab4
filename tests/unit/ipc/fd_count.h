// Counts this process's open fds, to prove that received fds are never leaked.
#pragma once

#include <dirent.h>

namespace tw::ipc::testing {

inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n - 3;  // ".", ".." and the directory's own fd
}

}  // namespace tw::ipc::testing
