// DERP client for one relay node, over a TCP fd that someone else connected (in
// production the broker dials and hands the fd to netproc, which cannot create
// sockets). It speaks TLS (or plain HTTP when the node is marked so for tests), the
// `GET /derp` upgrade, the ServerKey → ClientInfo → ServerInfo handshake, then frames.
//
// Event-loop contract (poll-driven, no threads, never blocks):
//   * poll fd() for POLLIN, plus POLLOUT while wants_write();
//   * call on_io(now) whenever the fd is ready (spurious calls are harmless);
//   * call check_timeout(now) at deadline() (the 120 s read deadline);
//   * any error Status means the connection is finished: destroy the client (its
//     destructor closes the fd) and let the region manager schedule a reconnect.
// Events are delivered synchronously from inside on_io.
//
// The ClientInfo box must be sealed with the node private key, which netproc does not
// hold: `ClientInfoSealer` does it (dataproc in production, libsodium in tests) and
// returns nonce(24) || box. ServerInfo is boxed to the node key too, so we cannot open
// it; its arrival marks the handshake complete and its contents (an optional token
// bucket) are not honoured.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "common/result.h"
#include "netproc/derp/frame.h"
#include "netproc/derp/stream.h"

namespace tw::derp {

using ClientInfoSealer =
    std::function<Result<Bytes>(const NodePublic& server, const std::string& client_info_json)>;

struct DerpClientConfig {
  NodePublic self;
  std::string host_name;   // DERPNode.HostName: the Host header, and the TLS name by default
  std::string cert_name;   // DERPNode.CertName: overrides the TLS name when set
  bool plain_http = false; // tests only: no TLS at all
  bool preferred = false;  // home region: send NotePreferred(true) right after ClientInfo
  TlsClientConfig tls;     // CA file/dir, InsecureForTests (verify_name filled in here)
  // A context made before the sandbox (netproc cannot open CA files later); when
  // null, one is made from `tls` at start.
  SSL_CTX* ssl_ctx = nullptr;
  // Asynchronous sealing (netproc asks dataproc over IPC): called with the server key
  // and the ClientInfo JSON; the owner answers with provide_sealed(). Used when the
  // synchronous sealer passed to start() is empty.
  std::function<void(const NodePublic& server, const std::string& json)> request_seal;
  Duration read_timeout = std::chrono::seconds(120);
  std::size_t max_pending_write = 4 * 1024 * 1024;  // sends beyond this are refused
};

struct DerpClientEvents {
  std::function<void()> on_ready;  // ServerInfo arrived
  std::function<void(const NodePublic& src, ByteView packet)> on_packet;
  std::function<void(const NodePublic& peer, PeerGoneReason reason)> on_peer_gone;
  std::function<void(const PingData& data)> on_pong;
  std::function<void(const std::string& problem)> on_health;  // empty = healthy again
  std::function<void(const Restarting& r)> on_restarting;
};

class DerpClient {
 public:
  // Takes ownership of `fd` (closed on destruction, also on error here).
  static Result<std::unique_ptr<DerpClient>> start(int fd, DerpClientConfig cfg, ClientInfoSealer sealer,
                                                   DerpClientEvents events, TimePoint now,
                                                   MetricsRegistry* metrics = nullptr);
  DerpClient(const DerpClient&) = delete;
  DerpClient& operator=(const DerpClient&) = delete;

  int fd() const { return stream_->fd(); }
  bool wants_write() const { return (!out_.empty() && !write_waits_read_) || blocked_on_write_; }
  bool ready() const { return state_ == State::kReady; }
  const NodePublic& server_key() const { return server_key_; }
  TimePoint deadline() const { return last_read_ + cfg_.read_timeout; }

  Status on_io(TimePoint now);
  Status check_timeout(TimePoint now) const;

  // Queue frames. Control frames are written by this call if the socket allows, else
  // by on_io. Packets are coalesced: written once kCoalesceBytes are pending, else by
  // the next on_io (wants_write() is true meanwhile), so a burst of sends costs a
  // few large TLS records instead of one record and one write(2) per packet.
  Status send_packet(const NodePublic& dst, ByteView packet);
  Status note_preferred(bool preferred);
  Status send_ping(const PingData& data);
  // The answer to request_seal: nonce(24) || box, or an error (connection finished).
  Status provide_sealed(Result<Bytes> sealed);

 private:
  static constexpr std::size_t kReadChunk = 64 * 1024;
  static constexpr std::size_t kCoalesceBytes = 64 * 1024;
  enum class State { kHttp, kServerKey, kSealing, kServerInfo, kReady };
  struct Counters {
    Counter* pongs_sent = nullptr;
    Counter* unknown_frames = nullptr;
    Counter* short_packets = nullptr;
  };
  DerpClient(std::unique_ptr<Stream> stream, DerpClientConfig cfg, ClientInfoSealer sealer,
             DerpClientEvents events, TimePoint now, MetricsRegistry* metrics);

  Status flush();
  Status read_available(bool& got_bytes);
  Status consume_http(ByteView bytes);
  Status handle_frames();
  Status handle_frame(const FrameView& f);
  Status handle_server_key(const FrameView& f);
  Status send_client_info(Result<Bytes> sealed);
  bool make_room(std::size_t n);
  Status queue(FrameType type, ByteView payload);

  std::unique_ptr<Stream> stream_;
  DerpClientConfig cfg_;
  ClientInfoSealer sealer_;
  DerpClientEvents events_;
  Counters counters_;
  State state_ = State::kHttp;
  NodePublic server_key_;
  Bytes http_buf_;
  FrameReader reader_;
  Bytes out_;
  std::size_t out_pos_ = 0;
  bool blocked_on_write_ = false;
  bool write_waits_read_ = false;  // TLS needs input before it can write
  TimePoint last_read_;
};

}  // namespace tw::derp
