#include "netproc/magicsock/types.h"

#include <sodium.h>

#include <cstring>

namespace tw::magicsock {

std::string_view to_string(CandidateSource s) {
  switch (s) {
    case CandidateSource::kNetmap:
      return "netmap";
    case CandidateSource::kPing:
      return "ping";
    case CandidateSource::kCallMeMaybe:
      return "call-me-maybe";
  }
  return "unknown";
}

void SodiumRandom::fill(std::span<std::uint8_t> out) { randombytes_buf(out.data(), out.size()); }

std::uint64_t SodiumRandom::uniform(std::uint64_t bound) {
  if (bound <= 0xffffffffULL) return randombytes_uniform(static_cast<std::uint32_t>(bound));
  std::uint64_t v;
  randombytes_buf(&v, sizeof v);
  return v % bound;
}

std::uint64_t SeededRandom::next() {
  std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void SeededRandom::fill(std::span<std::uint8_t> out) {
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t v = next();
    std::size_t n = std::min(out.size() - i, sizeof v);
    std::memcpy(out.data() + i, &v, n);
    i += n;
  }
}

}  // namespace tw::magicsock
