// tailwarden-ctlproc: the control-plane client (ts2021). Thin: checks its one fd (the
// broker link), initialises the crypto libraries while files can still be opened,
// enters the sandbox (seccomp last), then runs ctlproc/app.h until the broker link
// closes. It holds the machine key only; it never sees the node or disco private keys.
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/child_fds.h"
#include "common/keys.h"
#include "common/log.h"
#include "ctlproc/app.h"
#include "dataproc/wireguard/crypto.h"
#include "ipc/control_socket.h"
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::parse_child_args(argc, argv, "tailwarden-ctlproc");
  if (!args) {
    std::fprintf(stderr, "%s\n", args.error().c_str());
    return 2;
  }
  tw::init_logging("ctlproc", args->log_level);
  if (auto st = tw::ipc::check_control_socket(tw::child_fd::kBrokerControl); !st) {
    spdlog::error("start-up: fd 3: {}", st.error());
    return 2;
  }
  // Only fd 3 is expected above stderr; anything else is a leak from the spawner.
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    std::string extra;
    while (dirent* e = ::readdir(d)) {
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
  tw::crypto_init();
  tw::wg::wg_crypto_init();  // OpenSSL fetches BLAKE2s now, before opens are forbidden
  if (auto st = tw::ipc::set_nonblocking(tw::child_fd::kBrokerControl); !st) {
    spdlog::error("start-up: {}", st.error());
    return 2;
  }
  if (auto st = tw::policy::enter_sandbox(*args, tw::policy::ProcessRole::kCtlproc); !st) {
    spdlog::error("start-up: sandbox: {}", st.error());
    return 2;
  }
  tw::ctl::App app(tw::child_fd::kBrokerControl);
  const int code = app.run();
  std::fflush(nullptr);
  ::_exit(code);
}
