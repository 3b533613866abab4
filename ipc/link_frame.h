// The framing shared by the small typed links between the broker and ctlproc
// (ctlproc/link.h) and exitproc (exitproc/link.h): one SOCK_SEQPACKET datagram is
// one message, a 12-byte header (magic, version, type, body length; big-endian) and
// a body of exactly that length, decoded with ipc/wire.h's bounded readers. Each link
// keeps its own magic, version, body bound and message catalogue; this file checks
// only the frame and words every error with the link's name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/bytes.h"
#include "common/result.h"
#include "ipc/wire.h"

namespace tw::ipc {

constexpr std::size_t kLinkFrameHeaderBytes = 12;

// One link's constants.
struct LinkFraming {
  const char* name;  // prefixes every error: "ctl link", "exit link"
  std::uint32_t magic;
  std::uint16_t version;
  std::size_t max_body;
};

struct LinkFrame {
  std::uint16_t type = 0;
  ByteView body;
};

// Header + body. The caller keeps bodies within max_body (its decoder would refuse
// anything larger).
Bytes frame_link(const LinkFraming& link, std::uint16_t type, ByteView body);

// One message of a link's catalogue (a std::variant of types with a kType) framed:
// put(w, message) writes the alternative's body.
template <typename Variant, typename Put>
Bytes encode_link_message(const LinkFraming& link, const Variant& m, Put&& put) {
  BodyWriter w;
  const std::uint16_t type = std::visit(
      [&](const auto& v) {
        put(w, v);
        return std::decay_t<decltype(v)>::kType;
      },
      m);
  return frame_link(link, type, w.take());
}

// The header checked (length at least a header, magic, version, body length within
// max_body and equal to what follows it) and the body it frames.
Result<LinkFrame> unframe_link(const LinkFraming& link, ByteView datagram);
// The same for a datagram from the child, which never sends fds on its link.
Result<LinkFrame> unframe_link_from_child(const LinkFraming& link, ByteView datagram,
                                          std::size_t fds, const char* child);

// A type outside the receiver's part of the catalogue.
Error link_type_not_for(const LinkFraming& link, std::uint16_t type, const char* receiver);

// `message` must arrive with exactly `want` fds.
Status expect_link_fds(const LinkFraming& link, std::size_t got, std::size_t want,
                       const char* message);

// The decoded `value` as T if the reader consumed the body exactly without a failure,
// else the reader's error, named after the link and the message.
template <typename T, typename V>
Result<T> finish_link_body(const LinkFraming& link, BodyReader& r, V value, const char* message) {
  if (!r.finish()) return make_error(std::string(link.name) + ": " + message + ": " + r.error());
  return T(std::move(value));
}

}  // namespace tw::ipc
