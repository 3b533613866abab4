// Fuzz target: ts2021 bytes from the control server after the handshake (record
// frames, then the early-payload filter) and the HTTP/1.1 replies before it never
// crash. The first byte picks how the input is split across feed() calls.
#include <cstdint>

#include "ctlproc/http1.h"
#include "ctlproc/noise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  tw::ByteView in(data + 1, size - 1);
  tw::ctl::SymKey32 key{};
  tw::ctl::RecordReader reader(key);
  tw::ctl::EarlyPayloadFilter early;
  tw::ctl::EarlyPayloadFilter early_direct;
  tw::Bytes plain, passed, passed_direct;
  for (std::size_t i = 0; i < in.size(); i += chunk) {
    auto part = in.subspan(i, std::min(chunk, in.size() - i));
    plain.clear();
    if (reader.feed(part, plain).ok()) (void)early.feed(plain, passed);
    (void)early_direct.feed(part, passed_direct);
  }
  (void)tw::ctl::parse_upgrade_reply(in);
  (void)tw::ctl::parse_key_response(in, true);
  return 0;
}
