// One client connection of the relay server: its stream, handshake state, and the
// queues that feed its socket (control frames first, then disco, then data).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <set>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/keys.h"
#include "netproc/derp/frame.h"
#include "netproc/derp/stream.h"

namespace tw::derper {

struct Conn {
  // kResponding: a plain HTTP answer (probe, 404, 426) is being written, then close.
  enum class State { kHttp, kResponding, kClientInfo, kReady, kClosing };

  std::uint64_t id = 0;
  std::unique_ptr<derp::Stream> stream;
  State state = State::kHttp;
  TimePoint accepted{};
  Bytes http_in;
  derp::FrameReader reader{derp::kMaxClientInfoLen + derp::kFrameHeaderLen};
  NodePublic key;

  Bytes out;              // bytes being written
  std::size_t out_pos = 0;
  std::deque<Bytes> ctrl;  // whole frames: ServerKey, ServerInfo, KeepAlive, PeerGone, Ping
  std::deque<Bytes> disco;
  std::deque<Bytes> data;
  std::optional<derp::PingData> pending_pong;  // at most one, as Tailscale's server
  std::optional<TimePoint> write_blocked_since;
  bool awaiting_pump = false;  // listed in DerpServer::awaiting_pump_

  TimePoint next_keepalive{};
  TimePoint next_ping{};
  std::optional<derp::PingData> ping_outstanding;
  TimePoint last_send{};               // for "last writer is active" among duplicate keys
  std::set<NodePublic> received_from;  // senders whose departure we must report

  double not_here_tokens = 3;          // PeerGone(NotHere): burst 3, then 1 per second
  TimePoint not_here_refill{};
  std::uint64_t queue_drops = 0;

  bool has_output() const {
    return out_pos < out.size() || !ctrl.empty() || !disco.empty() || !data.empty() || pending_pong;
  }
};

}  // namespace tw::derper
