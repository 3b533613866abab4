// Fuzz target: any datagram on the broker <-> ctlproc link, with any fd count, is
// either decoded or refused with an error, never a crash; what decodes re-encodes to
// a datagram our own decoder accepts and that encodes the same again (the broker and
// ctlproc never send what the other side would refuse).
#include <cstdint>
#include <cstdlib>

#include "ctlproc/link.h"

namespace {

template <typename Decode>
void check_stable(const tw::Bytes& once, std::size_t fds, Decode decode) {
  auto again = decode(once, fds);
  if (!again.ok()) std::abort();  // we encoded something our own decoder refuses
  const tw::Bytes twice = tw::ctl::encode_link(*again);
  if (twice != once) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t fds = data[0] % 3;
  tw::ByteView d(data + 1, size - 1);
  if (auto m = tw::ctl::decode_to_ctlproc(d, fds); m.ok())
    check_stable(tw::ctl::encode_link(*m), fds, tw::ctl::decode_to_ctlproc);
  if (auto m = tw::ctl::decode_to_broker(d, fds); m.ok())
    check_stable(tw::ctl::encode_link(*m), fds, tw::ctl::decode_to_broker);
  return 0;
}
