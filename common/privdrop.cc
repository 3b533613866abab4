#include "common/privdrop.h"

#include <grp.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace tw {
namespace {

Error errno_error(const std::string& what) { return make_error(what + ": " + std::strerror(errno)); }

// Bounding and ambient sets: must run while CAP_SETPCAP is still held, i.e. before
// the uid change clears the effective set.
Status clear_bounding_and_ambient() {
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL) {
      return errno_error("PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return errno_error("PR_CAP_AMBIENT_CLEAR_ALL");
  }
  return ok_status();
}

Status clear_capability_sets() {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) return errno_error("capset(empty)");
  return ok_status();
}

}  // namespace

Status harden_process(pid_t expected_parent) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno_error("PR_SET_NO_NEW_PRIVS");
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return errno_error("PR_SET_PDEATHSIG");
  // The parent may have died before PDEATHSIG was armed: then we were reparented.
  if (expected_parent > 0 && getppid() != expected_parent) {
    return make_error("parent died during start-up");
  }
  return ok_status();
}

Status drop_privileges(const DropTarget& target, pid_t expected_parent, bool allow_root) {
  if ((target.uid == 0 || target.gid == 0) && !allow_root) {
    return make_error("refusing to run a sandboxed child as uid/gid 0");
  }
  if (auto st = clear_bounding_and_ambient(); !st) return st;
  if (geteuid() == 0) {
    if (setgroups(0, nullptr) != 0) return errno_error("setgroups(0)");
  }
  if (setresgid(target.gid, target.gid, target.gid) != 0) return errno_error("setresgid");
  if (setresuid(target.uid, target.uid, target.uid) != 0) return errno_error("setresuid");
  if (auto st = clear_capability_sets(); !st) return st;
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != target.uid || e != target.uid || s != target.uid ||
      getresgid(&rg, &eg, &sg) != 0 || rg != target.gid || eg != target.gid || sg != target.gid) {
    return make_error("credentials did not change as requested");
  }
  if (target.uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    return make_error("could regain root after dropping it");
  }
  return harden_process(expected_parent);
}

bool netns_is_empty_of_interfaces() {
  struct if_nameindex* list = if_nameindex();
  if (list == nullptr) return true;
  bool only_lo = true;
  for (auto* p = list; p->if_index != 0; ++p) {
    if (std::strcmp(p->if_name, "lo") != 0) only_lo = false;
  }
  if_freenameindex(list);
  return only_lo;
}

}  // namespace tw
