#include "policy/child_sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>

#include "common/child_fds.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/privdrop.h"

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

}  // namespace

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
  // Anything else above the fixed set is a leak from the spawner: refuse to run.
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    std::string extra;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int fd = std::atoi(e->d_name);
      if (fd >= kCount && fd != own) extra += " " + std::to_string(fd) + "->" + fd_link(fd);
    }
    ::closedir(d);
    if (!extra.empty()) return make_error("unexpected open fds:" + extra);
  }
  return ok_status();
}

Result<ChildBootstrap> bootstrap_child(int argc, char** argv, const std::string& program,
                                       const std::string& log_tag) {
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
  auto rings = ipc::RingMemory::attach(ipc::UniqueFd(child_fd::kRingMemory));
  if (!rings) {
    spdlog::error("start-up: rings: {}", rings.error());
    return Error{rings.error()};
  }
  crypto_init();
  return ChildBootstrap{*args, std::move(*rings)};
}

Status enter_sandbox(const ChildArgs& args, ProcessRole role) {
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
