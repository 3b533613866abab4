#include "dataproc/wireguard/tai64n.h"

#include <algorithm>

#include "common/bytes.h"

namespace tw::wg {

Tai64n tai64n_from(WallClock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const auto secs = static_cast<std::uint64_t>(ns / 1'000'000'000);
  auto nanos = static_cast<std::uint32_t>(ns % 1'000'000'000);
  nanos &= ~((1u << 24) - 1);
  Tai64n out{};
  store_be64(out.data(), (1ULL << 62) + secs);
  store_be32(out.data() + 8, nanos);
  return out;
}

bool tai64n_after(const Tai64n& a, const Tai64n& b) {
  return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

}  // namespace tw::wg
