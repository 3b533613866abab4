#include "dataproc/wireguard/messages.h"

namespace tw::wg {

std::optional<MessageType> classify_message(ByteView d) {
  if (d.size() < 4) return std::nullopt;
  const std::uint32_t type = load_le32(d.data());
  switch (type) {
    case 1:
      if (d.size() == kInitiationSize) return MessageType::kInitiation;
      break;
    case 2:
      if (d.size() == kResponseSize) return MessageType::kResponse;
      break;
    case 3:
      if (d.size() == kCookieReplySize) return MessageType::kCookieReply;
      break;
    case 4:
      // No multiple-of-16 check: padding stops at the MTU, which need not be one.
      if (d.size() >= kTransportMinSize) return MessageType::kTransport;
      break;
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace tw::wg
