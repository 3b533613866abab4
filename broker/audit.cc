#include "broker/audit.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tw::broker {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ns_id(pid_t pid) {
  char buf[64] = {};
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Lists the interfaces of `pid`'s network namespace from a short-lived forked child
// that joins it, so the broker itself never changes namespace.
bool interfaces_of(pid_t pid, std::vector<std::string>* names) {
  int nsfd = ::open(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return false;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    ::close(nsfd);
    return false;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::close(p[0]);
    if (::setns(nsfd, CLONE_NEWNET) != 0) ::_exit(1);
    struct if_nameindex* list = if_nameindex();
    if (list != nullptr) {
      for (auto* i = list; i->if_index != 0; ++i) {
        (void)!::write(p[1], i->if_name, strlen(i->if_name));
        (void)!::write(p[1], "\n", 1);
      }
    }
    ::_exit(0);
  }
  ::close(nsfd);
  ::close(p[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) names->push_back(line);
  return true;
}

// Inode numbers of every inet socket visible in `pid`'s network namespace.
void collect_inet_inodes(pid_t pid, std::set<ino_t>* out) {
  for (const char* table : {"tcp", "tcp6", "udp", "udp6", "raw", "raw6"}) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/net/" + table));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string field;
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      for (int i = 0; i < 10 && (f >> field); ++i) {
      }
      unsigned long long inode = 0;
      if (f >> inode && inode != 0) out->insert(static_cast<ino_t>(inode));
    }
  }
}

// The socket domain of the child's fd, read from a duplicate taken with pidfd_getfd
// (the broker is privileged; the duplicate is closed at once). -1 if unavailable.
int socket_domain_of(int pidfd, int fd) {
  if (pidfd < 0) return -1;
  int dup = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  if (dup < 0) return -1;
  int domain = -1;
  socklen_t len = sizeof domain;
  if (::getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) domain = -1;
  ::close(dup);
  return domain;
}

std::string hex_caps(unsigned long long v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", v);
  return buf;
}

}  // namespace

ProcStatus parse_proc_status(const std::string& text) {
  ProcStatus st;
  std::istringstream in(text);
  std::string line;
  int seen = 0;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    std::istringstream v(line.substr(colon + 1));
    if (key == "Uid") {
      v >> st.uid[0] >> st.uid[1] >> st.uid[2] >> st.uid[3];
      seen |= 1;
    } else if (key == "Gid") {
      v >> st.gid[0] >> st.gid[1] >> st.gid[2] >> st.gid[3];
      seen |= 2;
    } else if (key == "CapEff") {
      v >> std::hex >> st.cap_eff;
      seen |= 4;
    } else if (key == "CapPrm") {
      v >> std::hex >> st.cap_prm;
      seen |= 8;
    } else if (key == "CapBnd") {
      v >> std::hex >> st.cap_bnd;
      seen |= 16;
    } else if (key == "CapAmb") {
      v >> std::hex >> st.cap_amb;
    } else if (key == "NoNewPrivs") {
      v >> st.no_new_privs;
      seen |= 32;
    } else if (key == "Seccomp") {
      v >> st.seccomp;
      seen |= 64;
    }
  }
  st.ok = seen == 127;
  return st;
}

bool maps_have_writable_exec(const std::string& maps, std::string* offending) {
  std::istringstream in(maps);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string range, perms;
    f >> range >> perms;
    if (perms.size() >= 3 && perms[1] == 'w' && perms[2] == 'x') {
      if (offending) *offending = line;
      return true;
    }
  }
  return false;
}

std::vector<AuditRow> audit_child(const std::string& name, pid_t pid, pid_t broker_pid,
                                  const ExpectedFds& expected, bool may_hold_inet) {
  std::vector<AuditRow> rows;
  auto row = [&](std::string check, bool pass, std::string detail) {
    rows.push_back(AuditRow{name, std::move(check), pass, std::move(detail)});
  };
  const std::string proc = "/proc/" + std::to_string(pid);
  ProcStatus st = parse_proc_status(read_file(proc + "/status"));
  if (!st.ok) {
    row("process running", false, "cannot read " + proc + "/status");
    return rows;
  }
  row("process running", true, "pid " + std::to_string(pid));
  bool uid_ok = true, gid_ok = true;
  for (int i = 0; i < 4; ++i) {
    uid_ok = uid_ok && st.uid[i] != 0;
    gid_ok = gid_ok && st.gid[i] != 0;
  }
  row("uid is not 0", uid_ok, "uid " + std::to_string(st.uid[0]) + "/" + std::to_string(st.uid[1]));
  row("gid is not 0", gid_ok, "gid " + std::to_string(st.gid[0]) + "/" + std::to_string(st.gid[1]));
  row("effective capabilities empty", st.cap_eff == 0, hex_caps(st.cap_eff));
  row("permitted capabilities empty", st.cap_prm == 0, hex_caps(st.cap_prm));
  row("bounding capabilities empty", st.cap_bnd == 0, hex_caps(st.cap_bnd));
  row("NoNewPrivs", st.no_new_privs == 1, "NoNewPrivs " + std::to_string(st.no_new_privs));
  row("seccomp filter mode", st.seccomp == 2, "Seccomp " + std::to_string(st.seccomp));

  const std::string ns = ns_id(pid);
  row("own network namespace", !ns.empty() && ns != ns_id(broker_pid), ns);
  std::vector<std::string> ifaces;
  if (interfaces_of(pid, &ifaces)) {
    bool only_lo = true;
    std::string list;
    for (const auto& i : ifaces) {
      only_lo = only_lo && i == "lo";
      list += (list.empty() ? "" : ",") + i;
    }
    row("no interface but lo", only_lo, list.empty() ? "none" : list);
  } else {
    row("no interface but lo", false, "cannot enter the namespace to list interfaces");
  }

  // Every fd beyond stdio must be one the broker handed over.
  std::set<ino_t> inet_sockets;
  collect_inet_inodes(broker_pid, &inet_sockets);
  collect_inet_inodes(pid, &inet_sockets);
  std::string unexpected;
  int count = 0, inet = 0, stray_inet = 0;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (DIR* d = ::opendir((proc + "/fd").c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int fd = std::atoi(e->d_name);
      if (fd <= 2) continue;
      struct stat sb {};
      if (::stat((proc + "/fd/" + e->d_name).c_str(), &sb) != 0) continue;
      ++count;
      if (!expected.inodes.contains(sb.st_ino)) {
        char link[256] = {};
        (void)!::readlink((proc + "/fd/" + e->d_name).c_str(), link, sizeof link - 1);
        unexpected += std::string(unexpected.empty() ? "" : ", ") + e->d_name + "->" + link;
      }
      bool is_inet = inet_sockets.contains(sb.st_ino);
      if (!is_inet && S_ISSOCK(sb.st_mode)) {
        int domain = socket_domain_of(pidfd, fd);
        is_inet = domain == AF_INET || domain == AF_INET6;
      }
      if (is_inet) {
        ++inet;
        if (!expected.inet_inodes.contains(sb.st_ino)) ++stray_inet;
      }
    }
    ::closedir(d);
  }
  if (pidfd >= 0) ::close(pidfd);
  row("open fds are exactly the expected ones", unexpected.empty(),
      unexpected.empty() ? std::to_string(count) + " fds, all handed over by the broker"
                         : "unexpected: " + unexpected);
  if (may_hold_inet) {
    row("inet sockets only the underlay/DERP ones", stray_inet == 0,
        std::to_string(inet) + " inet socket(s), " + std::to_string(stray_inet) + " not handed over");
  } else {
    row("no inet socket", inet == 0, std::to_string(inet) + " inet socket(s)");
  }

  std::string offending;
  bool wx = maps_have_writable_exec(read_file(proc + "/maps"), &offending);
  row("no writable+executable mapping", !wx, wx ? offending : "none");
  return rows;
}

std::string format_audit_table(const std::vector<AuditRow>& rows) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-9s %-42s %-4s %s\n", "PROCESS", "CHECK", "", "DETAIL");
  out += line;
  bool all = !rows.empty();
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-9s %-42s %-4s %s\n", r.process.c_str(), r.check.c_str(),
                  r.pass ? "pass" : "FAIL", r.detail.c_str());
    out += line;
    all = all && r.pass;
  }
  out += all ? "audit: PASS\n" : "audit: FAIL\n";
  return out;
}

}  // namespace tw::broker
