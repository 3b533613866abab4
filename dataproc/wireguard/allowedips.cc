#include "dataproc/wireguard/allowedips.h"

#include <algorithm>
#include <cstring>

namespace tw::wg {
namespace {
inline unsigned bit_at(const std::uint8_t* addr, unsigned i) {
  return (addr[i / 8] >> (7 - i % 8)) & 1u;
}
}  // namespace

AllowedIps::AllowedIps() { clear(); }

void AllowedIps::clear() {
  entries_.clear();
  forget_last();
  v4_.nodes.assign(1, Node{});
  v6_.nodes.assign(1, Node{});
}

void AllowedIps::trie_insert(Trie& t, const std::uint8_t* addr, unsigned bits, PeerId peer) {
  std::uint32_t n = 0;
  for (unsigned i = 0; i < bits; ++i) {
    const unsigned b = bit_at(addr, i);
    if (t.nodes[n].child[b] == 0) {
      t.nodes[n].child[b] = static_cast<std::uint32_t>(t.nodes.size());
      t.nodes.push_back(Node{});
    }
    n = t.nodes[n].child[b];
  }
  t.nodes[n].peer_plus_one = peer + 1;
}

std::optional<PeerId> AllowedIps::trie_lookup(const Trie& t, const std::uint8_t* addr,
                                              unsigned max_bits) {
  std::uint32_t n = 0;
  std::uint32_t best = t.nodes[0].peer_plus_one;
  for (unsigned i = 0; i < max_bits; ++i) {
    n = t.nodes[n].child[bit_at(addr, i)];
    if (n == 0) break;
    if (t.nodes[n].peer_plus_one != 0) best = t.nodes[n].peer_plus_one;
  }
  if (best == 0) return std::nullopt;
  return best - 1;
}

void AllowedIps::insert(const IpPrefix& prefix, PeerId peer) {
  if (!prefix.addr.valid() || peer == UINT32_MAX) return;  // UINT32_MAX cannot be stored
  auto [it, inserted] = entries_.insert_or_assign(prefix, peer);
  (void)it;
  forget_last();
  if (!inserted) {
    rebuild();
    return;
  }
  if (prefix.addr.is_v4()) {
    trie_insert(v4_, prefix.addr.raw().data(), std::min<unsigned>(prefix.bits, 32), peer);
  } else {
    trie_insert(v6_, prefix.addr.raw().data(), std::min<unsigned>(prefix.bits, 128), peer);
  }
}

void AllowedIps::remove_peer(PeerId peer) {
  std::erase_if(entries_, [peer](const auto& e) { return e.second == peer; });
  rebuild();
}

void AllowedIps::rebuild() {
  forget_last();
  v4_.nodes.assign(1, Node{});
  v6_.nodes.assign(1, Node{});
  for (const auto& [prefix, peer] : entries_) {
    Trie& t = prefix.addr.is_v4() ? v4_ : v6_;
    trie_insert(t, prefix.addr.raw().data(),
                std::min<unsigned>(prefix.bits, prefix.addr.is_v4() ? 32 : 128), peer);
  }
}

std::optional<PeerId> AllowedIps::lookup(const IpAddr& addr) const {
  if (addr.is_v4()) return lookup_v4(addr.raw().data());
  if (addr.is_v6()) return lookup_v6(addr.raw().data());
  return std::nullopt;
}

std::optional<PeerId> AllowedIps::lookup_v4(const std::uint8_t* a) const {
  std::uint32_t key;
  std::memcpy(&key, a, 4);
  if (last_v4_valid_ && key == last_v4_) return last_v4_peer_;
  last_v4_peer_ = trie_lookup(v4_, a, 32);
  last_v4_ = key;
  last_v4_valid_ = true;
  return last_v4_peer_;
}

std::optional<PeerId> AllowedIps::lookup_v6(const std::uint8_t* a) const {
  if (last_v6_valid_ && std::memcmp(a, last_v6_, 16) == 0) return last_v6_peer_;
  last_v6_peer_ = trie_lookup(v6_, a, 128);
  std::memcpy(last_v6_, a, 16);
  last_v6_valid_ = true;
  return last_v6_peer_;
}

std::vector<IpPrefix> AllowedIps::prefixes_of(PeerId peer) const {
  std::vector<IpPrefix> out;
  for (const auto& [prefix, owner] : entries_)
    if (owner == peer) out.push_back(prefix);
  return out;
}

}  // namespace tw::wg
