// AllowedIPs: longest-prefix match from an address to a peer, one binary trie per
// address family (as the Linux module keeps). Used to pick the peer for an outgoing
// packet and to check the source of a decrypted one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "common/ipaddr.h"

namespace tw::wg {

using PeerId = std::uint32_t;

class AllowedIps {
 public:
  AllowedIps();

  // Maps the prefix to the peer; an identical prefix already present is taken over
  // (the newest owner wins, as in WireGuard).
  void insert(const IpPrefix& prefix, PeerId peer);
  // Drops every prefix of the peer.
  void remove_peer(PeerId peer);
  void clear();

  std::optional<PeerId> lookup(const IpAddr& addr) const;
  // Raw address bytes as found in a packet header (4 or 16 bytes).
  std::optional<PeerId> lookup_v4(const std::uint8_t* addr4) const;
  std::optional<PeerId> lookup_v6(const std::uint8_t* addr16) const;

  std::vector<IpPrefix> prefixes_of(PeerId peer) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Node {
    std::uint32_t child[2] = {0, 0};  // 0 = none (node 0 is a root, never a child)
    std::uint32_t peer_plus_one = 0;  // 0 = no prefix ends here
  };
  struct Trie {
    std::vector<Node> nodes;
  };

  static void trie_insert(Trie& t, const std::uint8_t* addr, unsigned bits, PeerId peer);
  static std::optional<PeerId> trie_lookup(const Trie& t, const std::uint8_t* addr,
                                           unsigned max_bits);
  void rebuild();
  void forget_last() { last_v4_valid_ = last_v6_valid_ = false; }

  Trie v4_;
  Trie v6_;
  std::map<IpPrefix, PeerId> entries_;  // the source of truth; the tries are rebuilt from it
  // The last answer per family: a batch of packets mostly goes to (or comes from) one
  // address, and a trie walk is up to 32 or 128 dependent loads. Any change forgets it.
  // Like the rest of the class, for one thread.
  mutable bool last_v4_valid_ = false, last_v6_valid_ = false;
  mutable std::uint32_t last_v4_ = 0;
  mutable std::uint8_t last_v6_[16] = {};
  mutable std::optional<PeerId> last_v4_peer_, last_v6_peer_;
};

}  // namespace tw::wg
