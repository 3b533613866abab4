// TAI64N timestamps for handshake initiations: 8-byte big-endian seconds + 2^62,
// then 4-byte big-endian nanoseconds. Compared bytewise, later is greater.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace tw::wg {

using Tai64n = std::array<std::uint8_t, 12>;
using WallClock = std::chrono::system_clock;

// The nanoseconds are rounded down to a multiple of 2^24 ns (~16.8 ms), as the Linux
// implementation does, so the timestamp does not leak fine-grained clock state.
Tai64n tai64n_from(WallClock::time_point t);
// True when a is strictly later than b.
bool tai64n_after(const Tai64n& a, const Tai64n& b);

}  // namespace tw::wg
