// The one underlay UDP socket (docs/direct-underlay.md#the-socket). The broker creates and
// binds it; netproc only ever receives the fd.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/ipaddr.h"
#include "common/result.h"
#include "ipc/unique_fd.h"

namespace tw::broker {

struct UnderlayBindOptions {
  std::uint16_t port = 0;  // 0: ephemeral
  bool enable_ipv6 = false;
};

struct UnderlaySocket {
  ipc::UniqueFd fd;
  bool v6 = false;         // [::] dual-stack socket with IPV6_V6ONLY = 0
  std::uint16_t port = 0;  // the port actually bound
  std::vector<std::string> warnings;  // fallbacks taken, for the log
};

// The bind attempt of one step; replaceable in tests to cause bind failures that
// cannot be caused otherwise on a healthy host.
using BindFn = std::function<int(int fd, const sockaddr* sa, socklen_t len)>;

// Tries, in order: with enable_ipv6, [::]:port then [::]:0 (when a port is pinned);
// then 0.0.0.0:port, then 0.0.0.0:0. Each fallback adds a warning. An error means
// every attempt failed: the node must run inert (DERP-only).
Result<UnderlaySocket> bind_underlay(const UnderlayBindOptions& opts, const BindFn& bind_fn = {});

// The local port of a bound socket, or 0.
std::uint16_t local_port(int fd);

}  // namespace tw::broker
