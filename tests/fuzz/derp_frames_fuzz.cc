// DERP frame reader and every frame-payload parser, on arbitrary stream bytes fed in
// arbitrary chunk sizes, alternately through feed() and through space()/commit() (the
// in-place path the client and the relay read with).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "netproc/derp/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::derp;
  if (size == 0) return 0;
  std::size_t chunk = 1 + data[0] % 64;
  tw::ByteView in(data + 1, size - 1);
  FrameReader reader(4096);
  bool in_place = false;
  for (std::size_t pos = 0; pos < in.size(); pos += chunk) {
    tw::ByteView piece = in.subspan(pos, std::min(chunk, in.size() - pos));
    if (in_place) {
      tw::MutableByteView room = reader.space(piece.size());
      std::memcpy(room.data(), piece.data(), piece.size());
      reader.commit(piece.size());
    } else {
      reader.feed(piece);
    }
    in_place = !in_place;
    for (;;) {
      auto f = reader.next_view();
      if (!f) return 0;
      if (!*f) break;
      tw::ByteView p = (*f)->payload;
      (void)parse_server_key(p);
      (void)parse_client_info(p);
      (void)parse_server_info(p);
      (void)parse_send_packet(p);
      (void)parse_recv_packet(p);
      (void)parse_peer_gone(p);
      (void)parse_note_preferred(p);
      (void)parse_ping(p, 1000);
      (void)parse_restarting(p);
      (void)looks_like_disco(p);
    }
  }
  return 0;
}
