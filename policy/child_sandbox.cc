#include "policy/child_sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "common/child_fds.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/privdrop.h"
#include "ipc/control_socket.h"

namespace tw::policy {
namespace {

std::string fd_link(int fd) {
  char buf[128] = {};
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

Status expect_seqpacket(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return make_error("fd " + std::to_string(fd) + ": not a socket");
  }
  len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX ||
      type != SOCK_SEQPACKET) {
    return make_error("fd " + std::to_string(fd) + ": not an AF_UNIX SOCK_SEQPACKET socket");
  }
  return ok_status();
}

Status expect_link_prefix(int fd, const char* prefix, const char* what) {
  std::string link = fd_link(fd);
  if (link.rfind(prefix, 0) != 0) {
    return make_error("fd " + std::to_string(fd) + ": expected " + what + ", got \"" + link + "\"");
  }
  return ok_status();
}

Error errno_error(const std::string& what) {
  return make_error(what + ": " + std::generic_category().message(errno));
}

Status set_limit(int resource, rlim_t value, const char* name) {
  const rlimit lim{value, value};
  if (::setrlimit(resource, &lim) != 0) return errno_error(std::string("setrlimit(") + name + ")");
  return ok_status();
}

}  // namespace

ChildLimits limits_for(ProcessRole role) {
  switch (role) {
    // netproc: the underlay socket, one TCP fd per DERP region in use, the epoll,
    // eventfds and timers of its loop.
    case ProcessRole::kNetproc:
      return {1024, 512};
    // dataproc: the fixed fds, the TUN fds and its loop; ctlproc: its broker link and
    // at most two control connections.
    case ProcessRole::kDataproc:
    case ProcessRole::kCtlproc:
      return {64, 512};
    // exitproc: two sockets per flow (client, proxy) up to 4096 flows, one per DNS
    // query in flight, plus its link, listeners and epoll; it clamps the limits the
    // broker sends to this budget (exitproc/app.h).
    case ProcessRole::kExitproc:
      return {16384, 512};
  }
  return {64, 512};
}

Status apply_child_limits(ProcessRole role) {
  const ChildLimits l = limits_for(role);
  if (auto st = set_limit(RLIMIT_CORE, 0, "CORE"); !st) return st;
  if (auto st = set_limit(RLIMIT_NOFILE, l.nofile, "NOFILE"); !st) return st;
  // seccomp refuses fork and exec already; NPROC is the second wall (threads count
  // against it too, for every process of the child's uid).
  if (auto st = set_limit(RLIMIT_NPROC, l.nproc, "NPROC"); !st) return st;
  // The children write no files. Their only write to a file can be the inherited
  // stderr, when the operator sent the broker's log to a regular file: a size limit
  // there would kill a child once that log grows, so FSIZE is 0 only otherwise.
  struct stat st {};
  if (::fstat(2, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (auto r = set_limit(RLIMIT_FSIZE, 0, "FSIZE"); !r) return r;
  }
  return ok_status();
}

Status enter_empty_root() {
  // A private mount namespace whose root is an empty, read-only tmpfs: after this no
  // path names anything (the pivot_root(".", ".") idiom; needs CAP_SYS_ADMIN, which
  // the child still has as root before the drop).
  if (::unshare(CLONE_NEWNS) != 0) return errno_error("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return errno_error("making / private");
  }
  // /proc exists in every place a child runs (start-up just read /proc/self/fd);
  // in this private namespace it is only a mount point for the new root.
  const char* mnt = "/proc";
  if (::mount("tw-empty", mnt, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,nr_inodes=1,mode=0555") != 0) {
    return errno_error("mounting the empty root");
  }
  if (::chdir(mnt) != 0) return errno_error("chdir to the empty root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno_error("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return errno_error("detaching the old root");
  if (::chdir("/") != 0) return errno_error("chdir /");
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0) {
    return errno_error("remounting the empty root read-only");
  }
  return ok_status();
}

Result<ChildArgs> parse_child_args(int argc, char** argv, const std::string& program) {
  CLI::App app{program};
  ChildArgs a;
  std::string sandbox = "strict";
  app.add_option("--uid", a.uid)->required();
  app.add_option("--gid", a.gid)->required();
  app.add_option("--sandbox", sandbox)->check(CLI::IsMember({"strict", "permissive-for-debugging"}));
  app.add_option("--log-level", a.log_level)->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return make_error(program + ": " + e.what());
  }
  a.strict = sandbox == "strict";
  return a;
}

Status validate_child_fds() {
  using namespace child_fd;
  for (int fd : {kBrokerControl, kPeerControl}) {
    if (auto st = expect_seqpacket(fd); !st) return st;
  }
  if (auto st = expect_link_prefix(kRingMemory, "/memfd:", "the ring memfd"); !st) return st;
  for (int fd : {kDoorbellNetToData, kDoorbellDataToNet}) {
    if (auto st = expect_link_prefix(fd, "anon_inode:[eventfd]", "an eventfd"); !st) return st;
  }
  return reject_fds_above(kCount - 1);
}

Status reject_fds_above(int highest) {
  // Anything above the fixed set is a leak from the spawner: refuse to run.
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    std::string extra;
    while (dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): single-threaded start-up
      if (e->d_name[0] == '.') continue;
      const int fd = std::atoi(e->d_name);
      if (fd > highest && fd != own) extra += " " + std::to_string(fd) + "->" + fd_link(fd);
    }
    ::closedir(d);
    if (!extra.empty()) return make_error("unexpected open fds:" + extra);
  }
  return ok_status();
}

Result<ChildArgs> bootstrap_link_child(int argc, char** argv, const std::string& program,
                                       const std::string& log_tag) {
  auto args = parse_child_args(argc, argv, program);
  if (!args) {
    (void)std::fprintf(stderr, "%s\n", args.error().c_str());
    return Error{args.error()};
  }
  init_logging(log_tag, args->log_level);
  Status st = ipc::check_control_socket(child_fd::kBrokerControl);
  if (st) st = reject_fds_above(child_fd::kBrokerControl);
  if (st) st = ipc::set_nonblocking(child_fd::kBrokerControl);
  if (!st) {
    spdlog::error("start-up: fd 3: {}", st.error());
    return Error{st.error()};
  }
  crypto_init();
  return args;
}

Result<ChildBootstrap> bootstrap_child(int argc, char** argv, const std::string& program,
                                       const std::string& log_tag, ipc::Direction consumed) {
  auto args = parse_child_args(argc, argv, program);
  if (!args) {
    std::fprintf(stderr, "%s\n", args.error().c_str());
    return Error{args.error()};
  }
  init_logging(log_tag, args->log_level);
  if (auto st = validate_child_fds(); !st) {
    spdlog::error("start-up: {}", st.error());
    return Error{st.error()};
  }
  auto rings = ipc::RingMemory::attach(ipc::UniqueFd(child_fd::kRingMemory), consumed);
  if (!rings) {
    spdlog::error("start-up: rings: {}", rings.error());
    return Error{rings.error()};
  }
  crypto_init();
  return ChildBootstrap{*args, std::move(*rings)};
}

Status enter_sandbox(const ChildArgs& args, ProcessRole role) {
  if (auto st = apply_child_limits(role); !st) return st;
  // Sanitizer builds keep the file system: their runtime reads /proc/self/maps and the
  // binary to print a report (the seccomp allowance of policy/syscall_tables.h).
  if (::geteuid() == 0 && args.strict && !sanitizer_allowance_compiled_in()) {
    warm_up_before_sandbox();  // what opens files lazily must do it before the root goes
    if (auto st = enter_empty_root(); !st) return st;
  }
  if (::geteuid() == 0) {
    if (auto st = drop_privileges({args.uid, args.gid}, ::getppid(), !args.strict); !st) return st;
  } else if (auto st = harden_process(::getppid()); !st) {
    return st;
  }
  if (!args.strict) {
    spdlog::warn("sandbox: permissive-for-debugging: seccomp filter NOT loaded");
    return ok_status();
  }
  return install(role);
}

}  // namespace tw::policy
