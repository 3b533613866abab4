// The start-up sequence both sandboxed children share (docs/design.md#3-start-up):
// validate the fixed fds, then - after the caller has mapped its rings and built
// everything that opens files - drop privileges and load the seccomp filter last.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "ipc/ring_memory.h"
#include "policy/seccomp_policy.h"

namespace tw::policy {

struct ChildArgs {
  uid_t uid = 0;
  gid_t gid = 0;
  bool strict = true;  // false: "permissive-for-debugging" (no seccomp; shows in audit)
  std::string log_level = "info";
};

// --uid N --gid N --sandbox strict|permissive-for-debugging --log-level L
Result<ChildArgs> parse_child_args(int argc, char** argv, const std::string& program);

// fds 3 and 4: AF_UNIX SOCK_SEQPACKET; 5: a sealed memfd; 6 and 7: eventfds; and
// nothing else open above 2 that the child did not expect.
Status validate_child_fds();

// Refuses to run with any fd above `highest` open (besides the one reading
// /proc/self/fd): a leak from the spawner.
Status reject_fds_above(int highest);

// The first half of the main of a child whose only fd is its broker link at fd 3
// (ctlproc, exitproc): arguments, logging under the process tag, the link checked
// (AF_UNIX SOCK_SEQPACKET, nothing else open above it) and made non-blocking, and
// libsodium. Errors are already printed or logged.
Result<ChildArgs> bootstrap_link_child(int argc, char** argv, const std::string& program,
                                       const std::string& log_tag);

// The shared first half of a child's main: arguments, logging under the process
// tag, fd validation, the ring mapping (the slots of the ring the child consumes
// read-only) and libsodium. Errors are already logged.
struct ChildBootstrap {
  ChildArgs args;
  ipc::RingMemory rings;
};
Result<ChildBootstrap> bootstrap_child(int argc, char** argv, const std::string& program,
                                       const std::string& log_tag, ipc::Direction consumed);

// Resource limits of a child, set before it drops root (hard = soft, so they cannot
// be raised again): CORE 0 always, FSIZE 0 unless stderr is a regular file.
struct ChildLimits {
  rlim_t nofile;
  rlim_t nproc;
};
ChildLimits limits_for(ProcessRole role);
Status apply_child_limits(ProcessRole role);

// Moves the calling (root) process into a private mount namespace whose root is an
// empty read-only tmpfs. Call after everything that reads files.
Status enter_empty_root();

// Sets the limits; as root in strict mode also enters the empty root; then drops to args.uid/gid
// (when running as root; a non-root test run only hardens), then installs the role's seccomp filter
// unless the mode is permissive.
Status enter_sandbox(const ChildArgs& args, ProcessRole role);

}  // namespace tw::policy
