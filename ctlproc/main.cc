// tailwarden-ctlproc: the control-plane client (ts2021). Thin: checks its one fd (the
// broker link), initialises the crypto libraries while files can still be opened,
// enters the sandbox (seccomp last), then runs ctlproc/app.h until the broker link
// closes. It holds the machine key only; it never sees the node or disco private keys.
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
#include "policy/child_sandbox.h"

int main(int argc, char** argv) {
  auto args = tw::policy::bootstrap_link_child(argc, argv, "tailwarden-ctlproc", "ctlproc");
  if (!args) return 2;
  tw::wg::wg_crypto_init();  // OpenSSL fetches BLAKE2s now, before opens are forbidden
  if (auto st = tw::policy::enter_sandbox(*args, tw::policy::ProcessRole::kCtlproc); !st) {
    spdlog::error("start-up: sandbox: {}", st.error());
    return 2;
  }
  tw::ctl::App app(tw::child_fd::kBrokerControl);
  const int code = app.run();
  std::fflush(nullptr);
  ::_exit(code);
}
