// The test traffic that crosses the rings between processes: message `seq` has a
// length, a peer id and contents all derived from `seq`, with a checksum at the
// end, so the receiver can tell loss, duplication, reordering and corruption apart.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

namespace tw::ipc::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kDefaultRingMessages = 1'000'000;
#else
constexpr std::uint64_t kDefaultRingMessages = 10'000'000;
#endif

inline std::uint64_t ring_message_count() {
  if (const char* env = std::getenv("TW_IPC_RING_MESSAGES")) return std::strtoull(env, nullptr, 10);
  return kDefaultRingMessages;
}

inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 31;
  x *= 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29);
}

inline std::size_t traffic_length(std::uint64_t seq) {
  if (seq % 1'000'003 == 5) return 65536;  // a full GSO-sized slot now and then
  if (seq % 10'007 == 3) return 1400;
  return 16 + mix(seq) % 49;  // 16..64
}

inline std::uint32_t traffic_peer(std::uint64_t seq) { return static_cast<std::uint32_t>(mix(seq + 1)); }

// Word-at-a-time FNV-style hash: cheap enough not to dominate the test's runtime.
inline std::uint32_t checksum(std::span<const std::uint8_t> b) {
  std::uint64_t h = 1469598103934665603ull;
  std::size_t i = 0;
  for (; i + 8 <= b.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, b.data() + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < b.size(); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

// Consumers poll a little (yielding the core) before sleeping on the doorbell.
constexpr int kSpinsBeforeSleep = 64;

// Fills buf (at least traffic_length(seq) bytes) and returns the length.
inline std::size_t fill_traffic(std::uint64_t seq, std::uint8_t* buf) {
  std::size_t len = traffic_length(seq);
  std::memcpy(buf, &seq, 8);
  std::uint64_t w = mix(seq ^ 0x5555);
  for (std::size_t i = 8; i + 4 < len; i += 8) {
    std::memcpy(buf + i, &w, std::min<std::size_t>(8, len - 4 - i));
    w += 0x9e3779b97f4a7c15ull;
  }
  std::uint32_t sum = checksum({buf, len - 4});
  std::memcpy(buf + len - 4, &sum, 4);
  return len;
}

// Empty string when `data` is exactly message `expect` for `peer`.
inline std::string check_traffic(std::uint64_t expect, std::uint32_t peer,
                                 std::span<const std::uint8_t> data) {
  if (data.size() < 12) return "short message at " + std::to_string(expect);
  std::uint64_t seq;
  std::memcpy(&seq, data.data(), 8);
  if (seq != expect) {
    return "expected message " + std::to_string(expect) + ", got " + std::to_string(seq);
  }
  if (data.size() != traffic_length(seq)) return "wrong length at " + std::to_string(seq);
  if (peer != traffic_peer(seq)) return "wrong peer id at " + std::to_string(seq);
  std::uint32_t sum;
  std::memcpy(&sum, data.data() + data.size() - 4, 4);
  if (sum != checksum(data.first(data.size() - 4))) return "bad checksum at " + std::to_string(seq);
  return {};
}

}  // namespace tw::ipc::testing
