// Shared body of the proxy-handshake fuzz targets: any bytes from an upstream proxy,
// split anywhere, during a client handshake of `kind`: never a crash, never a read
// past the input, nothing consumed after the handshake ended, and a failure always
// has a kind. Byte 0 picks the chunk size, byte 1 auth and CONNECT by name.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>

#include "exitproc/proxy_client.h"

inline int fuzz_proxy_handshake(tw::exitproc::ProxyKind kind, const std::uint8_t* data,
                                std::size_t size) {
  using namespace tw::exitproc;
  if (size < 2) return 0;
  const std::size_t chunk = 1 + data[0] % 32;
  const bool auth = (data[1] & 1) != 0;
  const bool by_name = (data[1] & 2) != 0;
  ConnectTarget t;
  if (by_name)
    t.domain = "example.test";
  else
    t.ipv4 = std::array<std::uint8_t, 4>{198, 18, 7, 80};
  t.port = 443;
  Credentials c;
  if (auth) c = {"user", "pass"};
  auto h = make_handshake(kind, t, c);
  if (!h.ok()) std::abort();
  tw::ByteView in(data + 2, size - 2);
  for (std::size_t i = 0; i < in.size(); i += chunk) {
    (void)(*h)->take_output();
    const auto part = in.subspan(i, std::min(chunk, in.size() - i));
    const HandshakeState before = (*h)->state();
    const std::size_t used = (*h)->feed(part);
    if (used > part.size()) std::abort();
    if (before != HandshakeState::kRunning && used != 0) std::abort();
    if ((*h)->state() == HandshakeState::kRunning && used != part.size()) std::abort();
  }
  if ((*h)->state() == HandshakeState::kRunning) (*h)->on_eof();
  if ((*h)->state() == HandshakeState::kFailed && (*h)->failure().detail.empty()) std::abort();
  return 0;
}
