// tailwarden-exitproc: terminates peers' exit flows (handed over by the kernel in the
// exit namespace, through listeners the broker created) and relays each through an
// upstream proxy connection the broker dialled. Thin: checks its one fd (the broker
// link), builds the event loop (epoll) while it may still, enters the sandbox
// (seccomp last: no socket, connect or bind), then runs exitproc/app.h until the
// broker link closes. It holds no key.
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/child_fds.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/log.h"
#include "exitproc/app.h"
#include "ipc/control_socket.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::parse_child_args(argc, argv, "tailwarden-exitproc");
  if (!args) {
    (void)std::fprintf(stderr, "%s\n", args.error().c_str());
    return 2;
  }
  tw::init_logging("exitproc", args->log_level);
  if (auto st = tw::ipc::check_control_socket(tw::child_fd::kBrokerControl); !st) {
    spdlog::error("start-up: fd 3: {}", st.error());
    return 2;
  }
  // Only fd 3 is expected above stderr; anything else is a leak from the spawner.
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    std::string extra;
    while (dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): single-threaded start-up
      if (e->d_name[0] == '.') continue;
      const int fd = std::atoi(e->d_name);
      if (fd > tw::child_fd::kBrokerControl && fd != own) extra += " " + std::to_string(fd);
    }
    ::closedir(d);
    if (!extra.empty()) {
      spdlog::error("start-up: unexpected open fds:{}", extra);
      return 2;
    }
  }
  tw::crypto_init();  // libsodium (base64 for HTTP Basic auth)
  if (auto st = tw::ipc::set_nonblocking(tw::child_fd::kBrokerControl); !st) {
    spdlog::error("start-up: {}", st.error());
    return 2;
  }
  // Each flow holds two sockets: the loop clamps its limits to the fd limit the
  // sandbox sets for this role.
  tw::exitproc::AppOptions opts;
  opts.fd_budget = static_cast<std::size_t>(
      tw::policy::limits_for(tw::policy::ProcessRole::kExitproc).nofile);
  tw::SystemTimeSource clock;
  tw::exitproc::App app(tw::child_fd::kBrokerControl, clock, opts);
  if (auto st = tw::policy::enter_sandbox(*args, tw::policy::ProcessRole::kExitproc); !st) {
    spdlog::error("start-up: sandbox: {}", st.error());
    return 2;
  }
  const int code = app.run();
  (void)std::fflush(nullptr);
  ::_exit(code);
}
