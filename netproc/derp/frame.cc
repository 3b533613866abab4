#include "netproc/derp/frame.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

namespace tw::derp {
namespace {

void append(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

Bytes key_then(const NodePublic& key, ByteView rest) {
  Bytes out;
  out.reserve(kKeyLen + rest.size());
  append(out, key.bytes());
  append(out, rest);
  return out;
}

// Go's encoding/json matches field names case-insensitively.
const nlohmann::json* find_ci(const nlohmann::json& obj, std::string_view name) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& k = it.key();
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      return &it.value();
  }
  return nullptr;
}

}  // namespace

void append_frame(Bytes& out, FrameType type, ByteView payload) {
  std::size_t at = out.size();
  out.resize(at + kFrameHeaderLen);
  out[at] = static_cast<std::uint8_t>(type);
  store_be32(out.data() + at + 1, static_cast<std::uint32_t>(payload.size()));
  append(out, payload);
}

void append_keyed_frame(Bytes& out, FrameType type, const NodePublic& key, ByteView packet) {
  std::size_t at = out.size();
  out.resize(at + kFrameHeaderLen + kKeyLen + packet.size());
  std::uint8_t* p = out.data() + at;
  p[0] = static_cast<std::uint8_t>(type);
  store_be32(p + 1, static_cast<std::uint32_t>(kKeyLen + packet.size()));
  std::memcpy(p + kFrameHeaderLen, key.data(), kKeyLen);
  if (!packet.empty()) std::memcpy(p + kFrameHeaderLen + kKeyLen, packet.data(), packet.size());
}

Result<Bytes> encode_frame(FrameType type, ByteView payload) {
  if (payload.size() > kMaxFrameSize) return make_error("derp: frame payload too large");
  Bytes out;
  out.reserve(kFrameHeaderLen + payload.size());
  append_frame(out, type, payload);
  return out;
}

MutableByteView FrameReader::space(std::size_t min) {
  if (pos_ == end_) pos_ = end_ = 0;
  if (buf_.size() - end_ < min && pos_ > 0) {
    // Only the unread tail (at most one partial frame on the data path) moves.
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (buf_.size() - end_ < min) buf_.resize(std::max(end_ + min, 2 * buf_.size()));
  return MutableByteView(buf_).subspan(end_);
}

void FrameReader::commit(std::size_t n) { end_ += std::min(n, buf_.size() - end_); }

void FrameReader::feed(ByteView bytes) {
  if (bytes.empty()) return;
  MutableByteView room = space(bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

Result<std::optional<FrameView>> FrameReader::next_view() {
  std::size_t avail = end_ - pos_;
  if (avail < kFrameHeaderLen) return std::optional<FrameView>{};
  const std::uint8_t* p = buf_.data() + pos_;
  std::uint32_t len = load_be32(p + 1);
  if (len > max_frame_) return make_error("derp: frame of " + std::to_string(len) + " bytes exceeds limit");
  if (avail - kFrameHeaderLen < len) return std::optional<FrameView>{};
  FrameView f{p[0], ByteView(p + kFrameHeaderLen, len)};
  pos_ += kFrameHeaderLen + len;
  return std::optional<FrameView>(f);
}

Result<std::optional<Frame>> FrameReader::next() {
  auto v = next_view();
  if (!v) return make_error(v.error());
  if (!*v) return std::optional<Frame>{};
  return std::optional<Frame>(Frame{(*v)->type, Bytes((*v)->payload.begin(), (*v)->payload.end())});
}

Bytes server_key_payload(const NodePublic& server) {
  Bytes out(kMagic.begin(), kMagic.end());
  append(out, server.bytes());
  return out;
}

Result<ServerKey> parse_server_key(ByteView payload) {
  if (payload.size() < kMagic.size() + kKeyLen) return make_error("derp: short ServerKey");
  if (payload.size() > 1024) return make_error("derp: oversized ServerKey");
  if (!std::equal(kMagic.begin(), kMagic.end(), payload.begin()))
    return make_error("derp: bad ServerKey magic");
  return ServerKey{NodePublic::from_bytes(payload.data() + kMagic.size())};
}

Bytes client_info_payload(const NodePublic& client, ByteView sealed) {
  return key_then(client, sealed);
}

Result<ClientInfo> parse_client_info(ByteView payload) {
  if (payload.size() < kKeyLen + kNonceLen) return make_error("derp: short ClientInfo");
  if (payload.size() > kMaxClientInfoLen) return make_error("derp: oversized ClientInfo");
  return ClientInfo{NodePublic::from_bytes(payload.data()), payload.subspan(kKeyLen)};
}

std::string client_info_json() {
  nlohmann::ordered_json j;
  j["version"] = kProtocolVersion;
  j["CanAckPings"] = true;
  return j.dump();
}

Result<ClientInfoFields> parse_client_info_json(ByteView json) {
  auto j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("derp: ClientInfo is not a JSON object");
  ClientInfoFields f;
  if (auto* v = find_ci(j, "version"); v && !v->is_null()) {
    if (!v->is_number_integer()) return make_error("derp: ClientInfo version is not an integer");
    f.version = v->get<int>();
  }
  if (auto* v = find_ci(j, "CanAckPings"); v && !v->is_null()) {
    if (!v->is_boolean()) return make_error("derp: ClientInfo CanAckPings is not a bool");
    f.can_ack_pings = v->get<bool>();
  }
  if (auto* v = find_ci(j, "IsProber"); v && v->is_boolean()) f.is_prober = v->get<bool>();
  return f;
}

Result<ByteView> parse_server_info(ByteView payload) {
  if (payload.size() < kNonceLen) return make_error("derp: short ServerInfo");
  return payload;
}

std::string server_info_json() {
  nlohmann::ordered_json j;
  j["version"] = kProtocolVersion;
  return j.dump();
}

Bytes send_packet_payload(const NodePublic& dst, ByteView packet) { return key_then(dst, packet); }

Result<SendPacket> parse_send_packet(ByteView payload) {
  if (payload.size() < kKeyLen) return make_error("derp: short SendPacket");
  if (payload.size() - kKeyLen > kMaxPacketSize) return make_error("derp: SendPacket over 64 KiB");
  return SendPacket{NodePublic::from_bytes(payload.data()), payload.subspan(kKeyLen)};
}

Bytes recv_packet_payload(const NodePublic& src, ByteView packet) { return key_then(src, packet); }

Result<RecvPacket> parse_recv_packet(ByteView payload) {
  if (payload.size() < kKeyLen) return make_error("derp: short RecvPacket");
  if (payload.size() - kKeyLen > kMaxPacketSize) return make_error("derp: RecvPacket over 64 KiB");
  return RecvPacket{NodePublic::from_bytes(payload.data()), payload.subspan(kKeyLen)};
}

Bytes peer_gone_payload(const NodePublic& peer, PeerGoneReason reason) {
  Bytes out(peer.bytes().begin(), peer.bytes().end());
  out.push_back(static_cast<std::uint8_t>(reason));
  return out;
}

Result<PeerGone> parse_peer_gone(ByteView payload) {
  if (payload.size() < kKeyLen) return make_error("derp: short PeerGone");
  PeerGone g{NodePublic::from_bytes(payload.data()), PeerGoneReason::kDisconnected};
  // Older servers send no reason byte: that means Disconnected.
  if (payload.size() > kKeyLen) g.reason = static_cast<PeerGoneReason>(payload[kKeyLen]);
  return g;
}

Bytes note_preferred_payload(bool preferred) { return Bytes{preferred ? std::uint8_t{1} : std::uint8_t{0}}; }

Result<bool> parse_note_preferred(ByteView payload) {
  if (payload.size() != 1) return make_error("derp: NotePreferred must be 1 byte");
  return payload[0] != 0;
}

Result<PingData> parse_ping(ByteView payload, std::size_t max_len) {
  if (payload.size() < kPingLen || payload.size() > max_len)
    return make_error("derp: ping/pong payload of " + std::to_string(payload.size()) + " bytes");
  PingData d{};
  std::copy_n(payload.begin(), kPingLen, d.begin());
  return d;
}

Bytes restarting_payload(const Restarting& r) {
  Bytes out(8);
  store_be32(out.data(), r.reconnect_in_ms);
  store_be32(out.data() + 4, r.try_for_ms);
  return out;
}

Result<Restarting> parse_restarting(ByteView payload) {
  if (payload.size() < 8) return make_error("derp: short Restarting");
  return Restarting{load_be32(payload.data()), load_be32(payload.data() + 4)};
}

bool looks_like_disco(ByteView packet) noexcept {
  static constexpr std::uint8_t kDiscoMagic[6] = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
  return packet.size() >= 62 && std::memcmp(packet.data(), kDiscoMagic, 6) == 0;
}

}  // namespace tw::derp
