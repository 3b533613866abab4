// Shared by the policy tests: what a forked test child does to become a sandboxed
// netproc or dataproc, and the parameter printing for role-parameterised tests.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "policy/seccomp_policy.h"

namespace tw::policy::testing {

// No core file for the expected SIGSYS deaths, then the real filter of `role`.
inline void enter_sandbox(ProcessRole role) {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  if (auto st = install(role); !st) {
    std::fprintf(stderr, "install failed: %s\n", st.error().c_str());
    ::_exit(99);
  }
}

// In a sandboxed child: report a failed step on stderr (shown by gtest) and exit 1.
inline void require(bool ok, const char* step) {
  if (!ok) {
    std::fprintf(stderr, "sandboxed step failed: %s\n", step);
    ::_exit(1);
  }
}

// The body of a death test: enter the sandbox, run `body`, exit 0 if it returns.
template <typename Body>
[[noreturn]] void run_sandboxed(ProcessRole role, Body&& body) {
  enter_sandbox(role);
  body();
  ::_exit(0);
}

inline std::string role_param_name(const ::testing::TestParamInfo<ProcessRole>& info) {
  return std::string(role_name(info.param));
}

}  // namespace tw::policy::testing
