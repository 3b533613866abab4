// Child-side privilege drop (docs/design.md#3-start-up): run in tailwarden-netproc and
// tailwarden-dataproc after fds are validated and rings mapped, before the seccomp
// filter is loaded. Every step is checked: a child that cannot drop what it must
// exits instead of running with more than it should.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace tw {

struct DropTarget {
  uid_t uid = 0;
  gid_t gid = 0;
};

// setgroups({}), setresgid, setresuid, then clears every capability set (effective,
// permitted, inheritable, ambient, bounding), sets NoNewPrivs and re-arms PDEATHSIG
// (the kernel clears it on credential change) and verifies the parent is still
// `expected_parent`. A uid of 0 is refused unless `allow_root` (test-only weak mode).
Status drop_privileges(const DropTarget& target, pid_t expected_parent, bool allow_root);

// Sets NoNewPrivs and PDEATHSIG=SIGKILL without changing credentials (used where the
// process is already unprivileged, e.g. tests).
Status harden_process(pid_t expected_parent);

// True when this process's network namespace has no interface other than `lo`.
bool netns_is_empty_of_interfaces();

}  // namespace tw
