// tailwarden-dataproc: the WireGuard dataplane. Thin: validates its fds, maps the
// rings, enters the sandbox, then runs the loop (dataproc/runtime.h).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "common/child_fds.h"
#include "dataproc/runtime.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto boot = tw::policy::bootstrap_child(argc, argv, "tailwarden-dataproc", "dataproc",
                                          tw::ipc::Direction::kNetToData);
  if (!boot) return 2;
  boost::asio::io_context io(1);
  tw::dataproc::Runtime runtime(io, {tw::ipc::UniqueFd(tw::child_fd::kBrokerControl),
                                     tw::ipc::UniqueFd(tw::child_fd::kPeerControl), &boot->rings,
                                     tw::ipc::UniqueFd(tw::child_fd::kDoorbellNetToData),
                                     tw::ipc::UniqueFd(tw::child_fd::kDoorbellDataToNet)});
  if (auto st = tw::policy::enter_sandbox(boot->args, tw::policy::ProcessRole::kDataproc); !st) {
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
