// tailwarden-netproc: the magicsock (disco, STUN, path choice, routing). Thin:
// validates its fds, maps the rings, builds the loop, enters the sandbox (seccomp
// last), then runs netproc/app.h until the broker link closes.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "common/child_fds.h"
#include "common/keys.h"
#include "common/log.h"
#include "netproc/app.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::parse_child_args(argc, argv, "tailwarden-netproc");
  if (!args) {
    std::fprintf(stderr, "%s\n", args.error().c_str());
    return 2;
  }
  tw::init_logging("netproc", args->log_level);
  if (auto st = tw::policy::validate_child_fds(); !st) {
    spdlog::error("start-up: {}", st.error());
    return 2;
  }
  auto rings = tw::ipc::RingMemory::attach(tw::ipc::UniqueFd(tw::child_fd::kRingMemory));
  if (!rings) {
    spdlog::error("start-up: rings: {}", rings.error());
    return 2;
  }
  tw::crypto_init();
  boost::asio::io_context io(1);
  tw::netproc::App app(io, {tw::ipc::UniqueFd(tw::child_fd::kBrokerControl),
                            tw::ipc::UniqueFd(tw::child_fd::kPeerControl), &*rings,
                            tw::ipc::UniqueFd(tw::child_fd::kDoorbellNetToData),
                            tw::ipc::UniqueFd(tw::child_fd::kDoorbellDataToNet)});
  if (auto st = tw::policy::enter_sandbox(*args, tw::policy::ProcessRole::kNetproc); !st) {
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
