// Framing: the fixed header around each body, and the encoder's self-check.
#include "ipc/messages.h"

namespace tw::ipc {

Result<Header> decode_header(ByteView datagram) {
  if (datagram.size() < kHeaderBytes) return make_error("datagram shorter than the header");
  if (load_be32(datagram.data()) != kMagic) return make_error("bad magic");
  if (load_be16(datagram.data() + 4) != kVersion) return make_error("unsupported version");
  Header h;
  h.type = load_be16(datagram.data() + 6);
  h.body_len = load_be32(datagram.data() + 8);
  if (h.body_len > kMaxBodyBytes) return make_error("body length over the limit");
  if (h.body_len != datagram.size() - kHeaderBytes) {
    return make_error("body length does not match the datagram");
  }
  return h;
}

Result<AnyMessage> decode_message(ByteView datagram) {
  auto h = decode_header(datagram);
  if (!h) return make_error(h.error());
  return decode_body(h->type, datagram.subspan(kHeaderBytes));
}

Result<Bytes> encode_message(const AnyMessage& m) {
  BodyWriter w;
  for (int i = 0; i < static_cast<int>(kHeaderBytes); ++i) w.u8(0);
  encode_body(w, m);
  Bytes out = w.take();
  std::size_t body_len = out.size() - kHeaderBytes;
  if (body_len > kMaxBodyBytes) return make_error("message body over the limit");
  store_be32(out.data(), kMagic);
  store_be16(out.data() + 4, kVersion);
  store_be16(out.data() + 6, static_cast<std::uint16_t>(type_of(m)));
  store_be32(out.data() + 8, static_cast<std::uint32_t>(body_len));
  // Never send what the receiver would refuse: the decoder is the one definition
  // of every limit, so run it over our own output.
  auto check = decode_body(static_cast<std::uint16_t>(type_of(m)),
                           ByteView(out).subspan(kHeaderBytes));
  if (!check) return make_error("refusing to send: " + check.error());
  return out;
}

}  // namespace tw::ipc
