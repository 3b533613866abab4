// Fuzz target: any datagram on the broker <-> exitproc link, with any fd count, is
// either decoded or refused with an error, never a crash; what decodes re-encodes to
// the same bytes (the codec has one wire form per message).
#include <cstdint>
#include <cstdlib>

#include "exitproc/link.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t fds = data[0] % 5;
  tw::ByteView d(data + 1, size - 1);
  if (auto m = tw::exitproc::decode_to_exitproc(d, fds); m.ok()) {
    tw::Bytes again = tw::exitproc::encode_link(*m);
    if (!std::equal(again.begin(), again.end(), d.begin(), d.end())) std::abort();
  }
  if (auto m = tw::exitproc::decode_to_broker(d, fds); m.ok()) {
    tw::Bytes again = tw::exitproc::encode_link(*m);
    if (!std::equal(again.begin(), again.end(), d.begin(), d.end())) std::abort();
  }
  return 0;
}
