// WireGuard wire formats: message types, exact sizes and field offsets, and the
// protocol constants of the paper. Integers are little-endian.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "common/bytes.h"

namespace tw::wg {

enum class MessageType : std::uint32_t {
  kInitiation = 1,
  kResponse = 2,
  kCookieReply = 3,
  kTransport = 4,
};

constexpr std::size_t kInitiationSize = 148;
constexpr std::size_t kResponseSize = 92;
constexpr std::size_t kCookieReplySize = 64;
constexpr std::size_t kTransportHeaderSize = 16;
constexpr std::size_t kTransportMinSize = 32;  // header + tag of an empty keepalive
constexpr std::size_t kTransportOverhead = kTransportHeaderSize + 16;
constexpr std::size_t kPaddingMultiple = 16;

// Initiation: type(4) sender(4) ephemeral(32) static(32+16) timestamp(12+16) mac1 mac2
namespace initiation {
constexpr std::size_t kSender = 4, kEphemeral = 8, kStatic = 40, kTimestamp = 88, kMac1 = 116,
                      kMac2 = 132;
}
// Response: type(4) sender(4) receiver(4) ephemeral(32) empty(0+16) mac1 mac2
namespace response {
constexpr std::size_t kSender = 4, kReceiver = 8, kEphemeral = 12, kEmpty = 44, kMac1 = 60,
                      kMac2 = 76;
}
// Cookie reply: type(4) receiver(4) nonce(24) cookie(16+16)
namespace cookie_reply {
constexpr std::size_t kReceiver = 4, kNonce = 8, kCookie = 32;
}
// Transport: type(4) receiver(4) counter(8) payload
namespace transport {
constexpr std::size_t kReceiver = 4, kCounter = 8, kPayload = 16;
}

// Classifies a datagram by its header and exact size; nullopt for anything that is
// not a well-formed WireGuard message (bytes 1..3 must be zero).
std::optional<MessageType> classify_message(ByteView datagram);

inline void write_header(std::uint8_t* p, MessageType t) {
  store_le32(p, static_cast<std::uint32_t>(t));
}

// Protocol constants.
constexpr std::uint64_t kRekeyAfterMessages = 1ULL << 60;
constexpr std::uint64_t kRejectAfterMessages = ~0ULL - (1ULL << 13);  // 2^64 - 2^13 - 1
constexpr auto kRekeyAfterTime = std::chrono::seconds(120);
constexpr auto kRejectAfterTime = std::chrono::seconds(180);
constexpr auto kRekeyAttemptTime = std::chrono::seconds(90);
constexpr auto kRekeyTimeout = std::chrono::seconds(5);
constexpr auto kRekeyTimeoutJitterMax = std::chrono::milliseconds(333);
constexpr auto kKeepaliveTimeout = std::chrono::seconds(10);
constexpr auto kCookieSecretLifetime = std::chrono::seconds(120);
// A responder accepts at most one initiation per peer in this interval (flood guard).
constexpr auto kInitiationMinInterval = std::chrono::milliseconds(20);
constexpr int kMaxHandshakeAttempts =
    static_cast<int>(kRekeyAttemptTime / kRekeyTimeout);  // 18
constexpr std::size_t kMaxStagedPackets = 128;

}  // namespace tw::wg
