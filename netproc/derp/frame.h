// DERP framing: `type(1) | len(4 BE) | payload`,
// and the payload layouts of every frame type. Pure codec: no I/O, no policy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/result.h"

namespace tw::derp {

constexpr std::array<std::uint8_t, 8> kMagic = {0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91};
constexpr int kProtocolVersion = 2;
constexpr std::size_t kFrameHeaderLen = 5;
constexpr std::size_t kNonceLen = 24;
constexpr std::size_t kMaxPacketSize = 64 * 1024;     // payload excluding keys
constexpr std::size_t kMaxFrameSize = 1024 * 1024;    // client-side fatal limit
constexpr std::size_t kMaxClientInfoLen = 256 * 1024; // server-side limit
constexpr std::size_t kPingLen = 8;

enum class FrameType : std::uint8_t {
  kServerKey = 0x01,
  kClientInfo = 0x02,
  kServerInfo = 0x03,
  kSendPacket = 0x04,
  kRecvPacket = 0x05,
  kKeepAlive = 0x06,
  kNotePreferred = 0x07,
  kPeerGone = 0x08,
  kPeerPresent = 0x09,
  kForwardPacket = 0x0a,
  kWatchConns = 0x10,
  kClosePeer = 0x11,
  kPing = 0x12,
  kPong = 0x13,
  kHealth = 0x14,
  kRestarting = 0x15,
};

enum class PeerGoneReason : std::uint8_t {
  kDisconnected = 0x00,
  kNotHere = 0x01,
  kMeshConnBroke = 0xf0,
};

using PingData = std::array<std::uint8_t, kPingLen>;

struct Frame {
  std::uint8_t type = 0;  // raw: unknown types are valid frames that callers skip
  Bytes payload;
};

// A frame parsed in place: `payload` points into the reader's buffer and stays valid
// until the reader's next space()/feed() call.
struct FrameView {
  std::uint8_t type = 0;
  ByteView payload;
};

// Serialises one frame. Refuses payloads the length field or our limit cannot carry.
Result<Bytes> encode_frame(FrameType type, ByteView payload);
void append_frame(Bytes& out, FrameType type, ByteView payload);
// `type | len | key | packet` without an intermediate payload buffer (SendPacket,
// RecvPacket: the data path).
void append_keyed_frame(Bytes& out, FrameType type, const NodePublic& key, ByteView packet);

// Incremental reader: stream bytes in, whole frames out. A declared length above
// `max_frame` is a fatal stream error (the caller closes the connection).
// The data path reads straight into space() and commit()s, then takes frames with
// next_view(), so a relayed packet is not copied between the read and its handler.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max_frame = kMaxFrameSize) : max_frame_(max_frame) {}
  // Writable room for at least `min` bytes after the buffered ones (moves the unread
  // tail to the front or grows the buffer when needed); commit() what was written.
  MutableByteView space(std::size_t min);
  void commit(std::size_t n);
  void feed(ByteView bytes);
  // nullopt: need more bytes. Error: the stream is corrupt and must be dropped.
  Result<std::optional<FrameView>> next_view();
  Result<std::optional<Frame>> next();  // as next_view(), with the payload copied out
  std::size_t buffered() const { return end_ - pos_; }

 private:
  std::size_t max_frame_;
  Bytes buf_;             // [pos_, end_) is unread; the rest is spare room
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
};

// ---- payloads -------------------------------------------------------------------

struct ServerKey {
  NodePublic key;
};
Bytes server_key_payload(const NodePublic& server);
Result<ServerKey> parse_server_key(ByteView payload);

// ClientInfo = client pub(32) || sealed, where sealed = nonce(24) || box(JSON).
struct ClientInfo {
  NodePublic key;
  ByteView sealed;  // points into the parsed payload
};
Bytes client_info_payload(const NodePublic& client, ByteView sealed);
Result<ClientInfo> parse_client_info(ByteView payload);
// The JSON tailscaled sends: {"version":2,"CanAckPings":true}.
std::string client_info_json();

struct ClientInfoFields {
  int version = 0;
  bool can_ack_pings = false;
  bool is_prober = false;
};
// Decodes ClientInfo JSON with Go's case-insensitive field names.
Result<ClientInfoFields> parse_client_info_json(ByteView json);

// ServerInfo = nonce(24) || box(JSON); the client cannot open it without the node key.
Result<ByteView> parse_server_info(ByteView payload);
std::string server_info_json();

struct SendPacket {
  NodePublic dst;
  ByteView packet;
};
Bytes send_packet_payload(const NodePublic& dst, ByteView packet);
Result<SendPacket> parse_send_packet(ByteView payload);

struct RecvPacket {
  NodePublic src;
  ByteView packet;
};
Bytes recv_packet_payload(const NodePublic& src, ByteView packet);
Result<RecvPacket> parse_recv_packet(ByteView payload);

struct PeerGone {
  NodePublic peer;
  PeerGoneReason reason = PeerGoneReason::kDisconnected;
};
Bytes peer_gone_payload(const NodePublic& peer, PeerGoneReason reason);
Result<PeerGone> parse_peer_gone(ByteView payload);

Bytes note_preferred_payload(bool preferred);
Result<bool> parse_note_preferred(ByteView payload);

// Ping/Pong carry 8 bytes; the server accepts 8..1000 and echoes the first 8.
Result<PingData> parse_ping(ByteView payload, std::size_t max_len = kPingLen);

struct Restarting {
  std::uint32_t reconnect_in_ms = 0;
  std::uint32_t try_for_ms = 0;
};
Bytes restarting_payload(const Restarting& r);
Result<Restarting> parse_restarting(ByteView payload);

// Go's LooksLikeDiscoWrapper (kept here so DERP does not depend on disco).
bool looks_like_disco(ByteView packet) noexcept;

}  // namespace tw::derp
