// tailwarden-netproc: the magicsock (disco, STUN, path choice, routing). Thin:
// validates its fds, maps the rings, builds the loop, enters the sandbox (seccomp
// last), then runs netproc/app.h until the broker link closes.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "common/child_fds.h"
#include "netproc/app.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto boot = tw::policy::bootstrap_child(argc, argv, "tailwarden-netproc", "netproc",
                                          tw::ipc::Direction::kDataToNet);
  if (!boot) return 2;
  boost::asio::io_context io(1);
  tw::netproc::App app(io, {tw::ipc::UniqueFd(tw::child_fd::kBrokerControl),
                            tw::ipc::UniqueFd(tw::child_fd::kPeerControl), &boot->rings,
                            tw::ipc::UniqueFd(tw::child_fd::kDoorbellNetToData),
                            tw::ipc::UniqueFd(tw::child_fd::kDoorbellDataToNet)});
  if (auto st = tw::policy::enter_sandbox(boot->args, tw::policy::ProcessRole::kNetproc); !st) {
    spdlog::error("start-up: sandbox: {}", st.error());
    return 2;
  }
  app.start([](int code) {
    std::fflush(nullptr);
    ::_exit(code);  // no exit-time work under the filter
  });
  io.run();
  std::fflush(nullptr);
  ::_exit(0);
}
