// Netmaps larger than one control message travel as numbered parts of the same
// generation. split_* packs peers into parts under the body limit; the assembler
// accepts parts strictly in order and yields the whole netmap after the last one.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "ipc/messages.h"

namespace tw::ipc {

Result<std::vector<NetprocNetmap>> split_netproc_netmap(std::uint64_t generation,
                                                        std::vector<NetprocPeer> peers,
                                                        std::string derp_map_json,
                                                        std::uint32_t home_derp = 0);
Result<std::vector<DataprocNetmap>> split_dataproc_netmap(std::uint64_t generation,
                                                          std::vector<DataprocPeer> peers);

// Msg is NetprocNetmap or DataprocNetmap. Any out-of-order, interleaved, stale or
// oversized sequence is an error, which the caller treats as a protocol violation.
template <typename Msg>
class NetmapAssembler {
 public:
  Result<std::optional<Msg>> add(Msg part) {
    const std::uint16_t index = part.part;
    if (have_complete_ && part.generation <= last_complete_) {
      return make_error("netmap generation did not increase");
    }
    if (index == 0) {
      if (pending_) return make_error("netmap part 0 while another netmap is incomplete");
      pending_ = std::move(part);
    } else {
      if (!pending_ || pending_->generation != part.generation || pending_->parts != part.parts ||
          index != next_part_ || !same_header(*pending_, part)) {
        return make_error("netmap part out of order");
      }
      if (pending_->peers.size() + part.peers.size() > kMaxNetmapPeers) {
        return make_error("netmap has too many peers");
      }
      for (auto& p : part.peers) pending_->peers.push_back(std::move(p));
    }
    next_part_ = static_cast<std::uint16_t>(index + 1);
    if (next_part_ < pending_->parts) return std::optional<Msg>{};
    Msg full = std::move(*pending_);
    pending_.reset();
    if (!peer_ids_unique(full)) return make_error("netmap repeats a peer id");
    have_complete_ = true;
    last_complete_ = full.generation;
    full.part = 0;
    full.parts = 1;
    return std::optional<Msg>{std::move(full)};
  }

 private:
  static bool same_header(const Msg& a, const Msg& b) {
    if constexpr (requires { a.home_derp; }) {
      return a.home_derp == b.home_derp;
    } else {
      return true;
    }
  }

  static bool peer_ids_unique(const Msg& m) {
    std::vector<std::uint32_t> ids;
    ids.reserve(m.peers.size());
    for (const auto& p : m.peers) ids.push_back(p.peer_id);
    std::sort(ids.begin(), ids.end());
    return std::adjacent_find(ids.begin(), ids.end()) == ids.end();
  }

  std::optional<Msg> pending_;
  std::uint16_t next_part_ = 0;
  bool have_complete_ = false;
  std::uint64_t last_complete_ = 0;
};

}  // namespace tw::ipc
