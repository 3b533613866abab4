// An append-only batch of packets in one reusable buffer: the engine's output. The
// caller clears and reuses it, so the steady-state data path allocates nothing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/bytes.h"
#include "dataproc/wireguard/allowedips.h"

namespace tw::wg {

class PacketBatch {
 public:
  struct Ref {
    PeerId peer;
    std::uint32_t offset;
    std::uint32_t length;
  };

  void clear() {
    refs_.clear();
    used_ = 0;
  }
  std::size_t size() const { return refs_.size(); }
  bool empty() const { return refs_.empty(); }
  PeerId peer(std::size_t i) const { return refs_[i].peer; }
  ByteView bytes(std::size_t i) const {
    return {storage_.data() + refs_[i].offset, refs_[i].length};
  }

  // Reserves `len` bytes for a new packet; the pointer is valid until the next append.
  std::uint8_t* append(PeerId peer, std::size_t len) {
    if (used_ + len > storage_.size()) storage_.resize(std::max(storage_.size() * 2, used_ + len));
    refs_.push_back(Ref{peer, static_cast<std::uint32_t>(used_), static_cast<std::uint32_t>(len)});
    std::uint8_t* p = storage_.data() + used_;
    used_ += len;
    return p;
  }
  // Trims the newest packet to `len` bytes (len <= its current length).
  void shrink_last(std::size_t len) {
    used_ -= refs_.back().length - len;
    refs_.back().length = static_cast<std::uint32_t>(len);
  }
  void drop_last() {
    used_ -= refs_.back().length;
    refs_.pop_back();
  }

 private:
  Bytes storage_;
  std::size_t used_ = 0;
  std::vector<Ref> refs_;
};

// Where a datagram (attributed by netproc to `hint`) turned out to come from after
// authentication: lets netproc learn a source it could not map itself.
struct Attribution {
  PeerId hint;
  PeerId peer;
};

struct EngineOutput {
  PacketBatch to_network;  // WireGuard datagrams, each for a peer
  PacketBatch to_tun;      // decrypted IP packets, each from a peer
  std::vector<Attribution> attributions;
  void clear() {
    to_network.clear();
    to_tun.clear();
    attributions.clear();
  }
};

}  // namespace tw::wg
