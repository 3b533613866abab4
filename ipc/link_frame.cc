#include "ipc/link_frame.h"

#include <algorithm>

namespace tw::ipc {

Bytes frame_link(const LinkFraming& link, std::uint16_t type, ByteView body) {
  Bytes out(kLinkFrameHeaderBytes + body.size());
  store_be32(&out[0], link.magic);
  store_be16(&out[4], link.version);
  store_be16(&out[6], type);
  store_be32(&out[8], static_cast<std::uint32_t>(body.size()));
  std::copy(body.begin(), body.end(), out.begin() + kLinkFrameHeaderBytes);
  return out;
}

Result<LinkFrame> unframe_link(const LinkFraming& link, ByteView d) {
  const std::string name(link.name);
  if (d.size() < kLinkFrameHeaderBytes)
    return make_error(name + ": datagram shorter than its header");
  if (load_be32(&d[0]) != link.magic) return make_error(name + ": bad magic");
  if (load_be16(&d[4]) != link.version) return make_error(name + ": unsupported version");
  const std::size_t len = load_be32(&d[8]);
  if (len > link.max_body || len != d.size() - kLinkFrameHeaderBytes)
    return make_error(name + ": body length does not match the datagram");
  return LinkFrame{load_be16(&d[6]), d.subspan(kLinkFrameHeaderBytes)};
}

Result<LinkFrame> unframe_link_from_child(const LinkFraming& link, ByteView datagram,
                                          std::size_t fds, const char* child) {
  auto f = unframe_link(link, datagram);
  if (f && fds != 0) {
    return make_error(std::string(link.name) + ": " + child + " sent " + std::to_string(fds) +
                      " fds");
  }
  return f;
}

Error link_type_not_for(const LinkFraming& link, std::uint16_t type, const char* receiver) {
  return make_error(std::string(link.name) + ": message type " + std::to_string(type) +
                    " is not for " + receiver);
}

Status expect_link_fds(const LinkFraming& link, std::size_t got, std::size_t want,
                       const char* message) {
  if (got != want) {
    return make_error(std::string(link.name) + ": " + message + " with " + std::to_string(got) +
                      " fds (want " + std::to_string(want) + ")");
  }
  return ok_status();
}

}  // namespace tw::ipc
