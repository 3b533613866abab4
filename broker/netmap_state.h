// The netmap in force, with the stable 32-bit peer ids the broker assigns (one per
// node key, kept across generations, docs/design.md#4-ipc) and the per-child views of it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/netmap.h"
#include "common/result.h"
#include "ipc/messages.h"

namespace tw::broker {

class NetmapState {
 public:
  // Validates `text` (the whole netmap file) and, if it is good, makes it the
  // netmap in force with the next generation. A bad netmap changes nothing.
  Status apply(const std::string& text, const std::string& origin);

  bool loaded() const { return generation_ != 0; }
  std::uint64_t generation() const { return generation_; }
  // Uses up a generation (one the children saw a partial netmap under).
  void advance_generation() { ++generation_; }
  // The peers whose disco key the last apply() changed (restarted peers), once.
  std::vector<NodePublic> take_restarted() { return std::exchange(restarted_, {}); }
  const Netmap& netmap() const { return netmap_; }
  const std::string& derp_map_json() const { return derp_map_json_; }

  std::uint32_t peer_id(const NodePublic& key) const;  // 0 if not in the netmap
  const NetmapPeer* peer_by_id(std::uint32_t id) const;
  // A peer by name or by one of its tailnet addresses.
  const NetmapPeer* find_peer(const std::string& name_or_address) const;

  std::vector<ipc::NetprocPeer> netproc_peers() const;
  std::vector<ipc::DataprocPeer> dataproc_peers() const;
  // Every IPv4 prefix some peer is allowed to send from (for TUN routes).
  std::vector<IpPrefix> routed_prefixes() const;

 private:
  std::uint64_t generation_ = 0;
  Netmap netmap_;
  std::string derp_map_json_;
  std::vector<NodePublic> restarted_;
  std::map<NodePublic, std::uint32_t> ids_;
  std::uint32_t next_id_ = 1;
};

}  // namespace tw::broker
