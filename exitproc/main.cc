// tailwarden-exitproc: terminates peers' exit flows (handed over by the kernel in the
// exit namespace, through listeners the broker created) and relays each through an
// upstream proxy connection the broker dialled. Thin: checks its one fd (the broker
// link), builds the event loop (epoll) while it may still, enters the sandbox
// (seccomp last: no socket, connect or bind), then runs exitproc/app.h until the
// broker link closes. It holds no key.
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
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::bootstrap_link_child(argc, argv, "tailwarden-exitproc", "exitproc");
  if (!args) return 2;
  // Each flow holds two sockets: the loop clamps its limits to the fd limit the
  // sandbox sets for this role.
  tw::exitproc::AppOptions opts;
  opts.fd_budget =
      static_cast<std::size_t>(tw::policy::limits_for(tw::policy::ProcessRole::kExitproc).nofile);
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
