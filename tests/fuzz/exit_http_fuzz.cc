// Fuzz target: the HTTP CONNECT client handshake against any proxy bytes
// (tests/fuzz/exit_handshake_fuzz.h).
#include "tests/fuzz/exit_handshake_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzz_proxy_handshake(tw::exitproc::ProxyKind::kHttpConnect, data, size);
}
