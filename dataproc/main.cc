// tailwarden-dataproc: the WireGuard dataplane. Thin: validates its fds, maps the
// rings, enters the sandbox, then runs the loop (dataproc/runtime.h).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "common/child_fds.h"
#include "common/keys.h"
#include "common/log.h"
#include "dataproc/runtime.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::parse_child_args(argc, argv, "tailwarden-dataproc");
  if (!args) {
    std::fprintf(stderr, "%s\n", args.error().c_str());
    return 2;
  }
  tw::init_logging("dataproc", args->log_level);
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
  tw::dataproc::Runtime runtime(io, {tw::ipc::UniqueFd(tw::child_fd::kBrokerControl),
                                     tw::ipc::UniqueFd(tw::child_fd::kPeerControl), &*rings,
                                     tw::ipc::UniqueFd(tw::child_fd::kDoorbellNetToData),
                                     tw::ipc::UniqueFd(tw::child_fd::kDoorbellDataToNet)});
  if (auto st = tw::policy::enter_sandbox(*args, tw::policy::ProcessRole::kDataproc); !st) {
    spdlog::error("start-up: sandbox: {}", st.error());
    return 2;
  }
  runtime.start([](int code) {
    std::fflush(nullptr);
    ::_exit(code);  // no exit-time work under the filter (LeakSanitizer would need ptrace)
  });
  io.run();
  return 0;
}
