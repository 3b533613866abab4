// Seccomp sandboxes of the two children (docs/design.md#3-start-up,
// #6-egress-the-single-egress-invariant). Each child loads its own allowlist last in its set-up,
// after dropping privileges; anything not in the table kills the whole process (SIGSYS), and so
// does a foreign architecture.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace tw::policy {

enum class ProcessRole { kNetproc, kDataproc, kCtlproc, kExitproc };

std::string_view role_name(ProcessRole role);

// What the C/C++ runtime would otherwise do lazily by opening a file (the time zone,
// the sanitizer's view of /proc/self/maps), done now while files can still be opened.
// install() calls it; the child sandbox calls it before the root is emptied.
void warm_up_before_sandbox();

// Loads the filter of `role` into the calling process, for every thread (TSYNC), and
// sets NoNewPrivs first if it is not set yet. Call it last in the child's set-up:
// after this no file can be opened, no socket created, no program executed.
// Before loading it warms what would otherwise open files lazily (the time zone).
Status install(ProcessRole role);

// The filter of `role` as libseccomp pseudo filter code (PFC), preceded by a comment
// header that names the role and lists the syscalls denied on purpose. The caller's
// own process id (the only target allowed for tgkill, i.e. abort()) is written as
// kGoldenSelfPid, so the text is the same in every process: it is what the golden
// files in policy/golden/ hold. Empty only if libseccomp fails.
std::string export_pfc(ProcessRole role);
// The same with a given own-pid, which is what install() loads for getpid().
std::string export_pfc(ProcessRole role, pid_t self_pid);
inline constexpr pid_t kGoldenSelfPid = 0;

// True when this build carries the sanitizer allowance (TW_SANITIZER_BUILD): the
// filters then differ from the golden files and a few syscalls behave differently
// (see policy/syscall_tables.cc).
bool sanitizer_allowance_compiled_in();

}  // namespace tw::policy
