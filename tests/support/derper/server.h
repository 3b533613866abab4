// tailwarden-derper: a DERP relay server and STUN
// responder, single-threaded on epoll. Used by the integration and end-to-end tests
// and fit for self-hosting a small relay.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/result.h"
#include "netproc/derp/frame.h"
#include "netproc/derp/stream.h"

namespace tw::derper {

struct ServerConfig {
  IpPort listen;
  std::string tls_cert;
  std::string tls_key;
  bool plain_http = false;
  int stun_port = -1;  // -1: no STUN; 0: an ephemeral port
  NodePrivate key;
  Duration keepalive = std::chrono::seconds(60);
  Duration ping_interval{};  // 0: the server never pings (Tailscale's default)
  Duration write_timeout = std::chrono::seconds(2);
  Duration handshake_timeout = std::chrono::seconds(10);
  std::size_t queue_depth = 32;
};

struct Conn;

class DerpServer {
 public:
  static Result<std::unique_ptr<DerpServer>> create(ServerConfig cfg);
  ~DerpServer();
  DerpServer(const DerpServer&) = delete;
  DerpServer& operator=(const DerpServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::uint16_t stun_port() const { return stun_port_; }
  NodePublic public_key() const { return pub_; }
  // Serves until *stop becomes true (checked at least every 250 ms).
  void run(const volatile bool* stop);

 private:
  explicit DerpServer(ServerConfig cfg);
  Status open_sockets();
  void accept_all(TimePoint now);
  void serve_stun();
  void on_conn_event(Conn& c, TimePoint now);
  void read_conn(Conn& c, TimePoint now);
  void consume_http(Conn& c, ByteView bytes);
  void handle_frames(Conn& c, TimePoint now);
  void handle_frame(Conn& c, const derp::FrameView& f, TimePoint now);
  void handle_client_info(Conn& c, const derp::FrameView& f, TimePoint now);
  void handle_send(Conn& c, const derp::FrameView& f, TimePoint now);
  void deliver(Conn& from, Conn& to, ByteView packet, TimePoint now);
  void pump_receivers(TimePoint now);
  void queue_ctrl(Conn& c, derp::FrameType type, ByteView payload);
  void pump(Conn& c, TimePoint now);
  bool refill(Conn& c);
  Bytes spare_frame();
  void recycle(Bytes&& frame);
  void timers(TimePoint now);
  void close_conn(std::uint64_t id, const std::string& why);
  void reap();
  Conn* active_for(const NodePublic& key);

  ServerConfig cfg_;
  NodePublic pub_;
  derp::SslCtxPtr tls_;
  int epfd_ = -1;
  int listen_fd_ = -1;
  int stun_fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t stun_port_ = 0;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns_;
  std::map<NodePublic, std::vector<std::uint64_t>> by_key_;
  std::vector<std::uint64_t> doomed_;  // closed: erased after the event batch
  std::vector<std::uint64_t> rerun_;   // hit the read budget: served again next loop
  std::vector<std::uint64_t> awaiting_pump_;  // got packets in this read batch
  std::vector<Bytes> spare_;  // emptied RecvPacket frames, reused to spare an allocation per packet

  static constexpr std::size_t kReadChunk = 64 * 1024;
  static constexpr std::size_t kWriteBatch = 64 * 1024;  // bytes handed to one write
  static constexpr std::size_t kSpareFrames = 256;
  static constexpr std::size_t kSpareFrameCapacity = 4096;
};

}  // namespace tw::derper
