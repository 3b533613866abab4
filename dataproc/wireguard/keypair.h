// A transport session (one pair of ChaCha20-Poly1305 keys from a completed handshake)
// and a peer's three session slots: current, previous and next (the paper's
// rotation; the responder's new session waits in `next` until the initiator
// confirms it with its first transport message).
#pragma once

#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "dataproc/wireguard/crypto.h"
#include "dataproc/wireguard/messages.h"
#include "dataproc/wireguard/replay.h"

namespace tw::wg {

struct Keypair {
  SymKey send_key{};
  SymKey recv_key{};
  std::uint64_t send_counter = 0;
  ReplayWindow replay;
  TimePoint birth{};
  bool initiator = false;
  std::uint32_t local_index = 0;
  std::uint32_t remote_index = 0;

  Keypair() = default;
  Keypair(const Keypair&) = delete;
  Keypair& operator=(const Keypair&) = delete;
  ~Keypair();

  bool can_send(TimePoint now) const {
    return send_counter < kRejectAfterMessages && now - birth < kRejectAfterTime;
  }
  bool can_receive(TimePoint now) const { return now - birth < kRejectAfterTime; }
};

struct Keypairs {
  std::unique_ptr<Keypair> current;
  std::unique_ptr<Keypair> previous;
  std::unique_ptr<Keypair> next;

  Keypair* find(std::uint32_t local_index) const {
    for (Keypair* k : {current.get(), previous.get(), next.get()})
      if (k && k->local_index == local_index) return k;
    return nullptr;
  }
  void clear() {
    current.reset();
    previous.reset();
    next.reset();
  }
};

}  // namespace tw::wg
