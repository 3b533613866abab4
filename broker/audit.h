// `tailwarden audit`: reads a running child from /proc and checks every sandbox
// promise of docs/design.md (sections 3 and 6), one row per check.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

namespace tw::broker {

struct AuditRow {
  std::string process;  // "netproc" / "dataproc"
  std::string check;
  bool pass = false;
  std::string detail;
};

// What the broker handed the child: the inode numbers of its sockets, memfds and
// eventfds, as the broker's own copies report them (fstat st_ino).
struct ExpectedFds {
  std::set<ino_t> inodes;      // every fd the child may hold (besides stdio)
  std::set<ino_t> inet_inodes; // of those, the ones that may be inet sockets (the UDP socket, DERP TCP)
};

struct ProcStatus {
  long uid[4] = {-1, -1, -1, -1};
  long gid[4] = {-1, -1, -1, -1};
  unsigned long long cap_eff = ~0ULL, cap_prm = ~0ULL, cap_bnd = ~0ULL, cap_amb = ~0ULL;
  int no_new_privs = -1;
  int seccomp = -1;
  bool ok = false;
};

// Parses /proc/<pid>/status text (pure, tested with fixtures).
ProcStatus parse_proc_status(const std::string& text);
// True when a /proc/<pid>/maps text has a mapping that is both writable and executable.
bool maps_have_writable_exec(const std::string& maps, std::string* offending);

// Audits one child. `broker_pid` names the namespace it must differ from.
std::vector<AuditRow> audit_child(const std::string& name, pid_t pid, pid_t broker_pid,
                                  const ExpectedFds& expected, bool may_hold_inet);

// Fixed-width text table of the rows; the last line says PASS or FAIL.
std::string format_audit_table(const std::vector<AuditRow>& rows);

}  // namespace tw::broker
