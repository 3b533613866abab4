// The declarative seccomp tables (see syscall_tables.cc). One row is one syscall with
// at most two argument conditions (all must hold); several rows for the same syscall
// mean "any of these". Rows compile to libseccomp rules in seccomp_policy.cc.
#pragma once

#include <seccomp.h>

#include <cstdint>
#include <span>
#include <vector>

#include "policy/seccomp_policy.h"

namespace tw::policy::detail {

enum class Verdict : std::uint8_t {
  kAllow,
  kErrno,  // fail the call with `err` instead of killing: for probes we can answer
};

struct ArgCheck {
  unsigned arg = 0;  // 0..5
  scmp_compare op = SCMP_CMP_EQ;
  std::uint64_t mask = 0;   // SCMP_CMP_MASKED_EQ only
  std::uint64_t value = 0;  // ignored when self_pid is set
  bool self_pid = false;    // value is the loading process's own pid
};

struct SyscallRule {
  int nr;
  const char* name;
  Verdict verdict = Verdict::kAllow;
  int err = 0;
  ArgCheck checks[2] = {};
  unsigned n_checks = 0;
};

// A syscall killed on purpose. libseccomp refuses a rule whose action equals the
// filter's default action (kill the process), so a denial is not a BPF rule of its own; it is made
// explicit instead by: building a filter fails if an allow row names it, the golden dumps list it
// in their header, and a death test calls each one.
struct SyscallDenial {
  int nr;
  const char* name;
};

std::span<const SyscallRule> netproc_table();
std::span<const SyscallRule> dataproc_table();
std::span<const SyscallRule> ctlproc_table();
std::span<const SyscallRule> exitproc_table();
// Extra rows for binaries instrumented by ASan/UBSan/LSan (TW_SANITIZER_BUILD only).
std::span<const SyscallRule> sanitizer_allowance();
std::span<const SyscallDenial> denied_in_both();
// A denial a role's own table lifts: only exitproc's accept4 (it accepts the peers'
// flows on the listener the broker made). Everything else in denied_in_both() is
// denied for every role.
bool denial_lifted_for(ProcessRole role, int nr);
std::vector<SyscallDenial> denials_of(ProcessRole role);

}  // namespace tw::policy::detail
