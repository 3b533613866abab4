#include "netproc/derp/frame.h"

#include <gtest/gtest.h>

namespace tw::derp {
namespace {

Bytes hex(std::string_view h) { return *from_hex(h); }

NodePublic key_of(std::uint8_t fill) {
  KeyBytes b;
  b.fill(fill);
  return NodePublic(b);
}

Frame only_frame(ByteView wire) {
  FrameReader r;
  r.feed(wire);
  auto f = r.next();
  EXPECT_TRUE(f.ok());
  EXPECT_TRUE(f->has_value());
  return **f;
}

TEST(DerpFrame, HeaderBytesMatchTailscaleVectors) {
  Bytes send(1024, 0);
  auto f = encode_frame(FrameType::kSendPacket, send);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(to_hex(ByteView(*f).first(5)), "0400000400");
  auto ka = encode_frame(FrameType::kKeepAlive, {});
  EXPECT_EQ(to_hex(*ka), "0600000000");
}

TEST(DerpFrame, ReaderRejectsLengthFfffffffAsOverLimit) {
  FrameReader r;
  r.feed(hex("05ffffffff"));
  EXPECT_FALSE(r.next().ok());
}

TEST(DerpFrame, ReaderRejectsFrameJustOverOneMiB) {
  FrameReader r;
  Bytes h = {0x05, 0, 0, 0, 0};
  store_be32(h.data() + 1, 1024 * 1024 + 1);
  r.feed(h);
  EXPECT_FALSE(r.next().ok());
  FrameReader ok_reader;
  store_be32(h.data() + 1, 1024 * 1024);
  ok_reader.feed(h);
  auto f = ok_reader.next();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->has_value());  // legal length; waits for the payload
}

TEST(DerpFrame, ServerKeyMatchesComputedVector) {
  KeyBytes priv;
  priv.fill(0x55);
  NodePublic server = NodePrivate(priv).public_key();
  EXPECT_EQ(server.hex(), "38ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67");
  auto f = encode_frame(FrameType::kServerKey, server_key_payload(server));
  EXPECT_EQ(to_hex(*f),
            "010000002844455250f09f949138ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67");
  Frame back = only_frame(*f);
  auto sk = parse_server_key(back.payload);
  ASSERT_TRUE(sk.ok());
  EXPECT_EQ(sk->key, server);
}

TEST(DerpFrame, ServerKeyWithWrongMagicOrTooShortIsRejected) {
  Bytes p = server_key_payload(key_of(1));
  p[0] ^= 1;
  EXPECT_FALSE(parse_server_key(p).ok());
  EXPECT_FALSE(parse_server_key(ByteView(server_key_payload(key_of(1))).first(39)).ok());
}

TEST(DerpFrame, FramesSplitAcrossReadsAreReassembledInOrder) {
  Bytes wire;
  append_frame(wire, FrameType::kKeepAlive, {});
  Bytes pkt = {1, 2, 3};
  append_frame(wire, FrameType::kRecvPacket, recv_packet_payload(key_of(7), pkt));
  FrameReader r;
  std::vector<Frame> got;
  for (std::uint8_t b : wire) {
    r.feed(ByteView(&b, 1));
    auto f = r.next();
    ASSERT_TRUE(f.ok());
    if (*f) got.push_back(**f);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, 0x06);
  auto rp = parse_recv_packet(got[1].payload);
  ASSERT_TRUE(rp.ok());
  EXPECT_EQ(rp->src, key_of(7));
  EXPECT_EQ(Bytes(rp->packet.begin(), rp->packet.end()), pkt);
}

TEST(DerpFrame, KeyedFrameIsTheSameBytesAsPayloadHelpers) {
  Bytes pkt = {9, 8, 7};
  Bytes direct, via_payload;
  append_keyed_frame(direct, FrameType::kSendPacket, key_of(4), pkt);
  append_frame(via_payload, FrameType::kSendPacket, send_packet_payload(key_of(4), pkt));
  EXPECT_EQ(direct, via_payload);
}

// The data path reads into space() in whatever pieces the socket returns; partial
// frames must survive the buffer moving its unread tail to the front and growing.
TEST(DerpFrame, FramesReadInPlaceSurviveCompactionAndGrowth) {
  Bytes wire;
  std::vector<Bytes> sent;
  for (std::uint8_t i = 0; i < 40; ++i) {
    Bytes pkt(1 + i * 97 % 3000, i);
    append_keyed_frame(wire, FrameType::kRecvPacket, key_of(i), pkt);
    sent.push_back(pkt);
  }
  FrameReader r;
  std::vector<Bytes> got;
  std::size_t pos = 0;
  for (std::size_t step = 0; pos < wire.size(); ++step) {
    std::size_t n = std::min<std::size_t>(wire.size() - pos, 1 + step * 331 % 5000);
    MutableByteView room = r.space(step % 2 ? n : 64);  // small asks force moves, big ones growth
    n = std::min(n, room.size());
    std::copy_n(wire.begin() + static_cast<std::ptrdiff_t>(pos), n, room.begin());
    r.commit(n);
    pos += n;
    for (;;) {
      auto f = r.next_view();
      ASSERT_TRUE(f.ok());
      if (!*f) break;
      auto rp = parse_recv_packet((*f)->payload);
      ASSERT_TRUE(rp.ok());
      EXPECT_EQ(rp->src, key_of(static_cast<std::uint8_t>(got.size())));
      got.emplace_back(rp->packet.begin(), rp->packet.end());
    }
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(DerpFrame, UnknownFrameTypeIsReturnedForTheCallerToSkip) {
  Bytes wire = hex("0b00000002abcd0600000000");
  FrameReader r;
  r.feed(wire);
  auto a = r.next();
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->type, 0x0b);
  auto b = r.next();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->type, 0x06);
}

TEST(DerpFrame, SendPacketOver64KiBIsRejectedAndAt64KiBAccepted) {
  Bytes big(kMaxPacketSize + 1);
  EXPECT_FALSE(parse_send_packet(send_packet_payload(key_of(2), big)).ok());
  Bytes max(kMaxPacketSize);
  auto sp = parse_send_packet(send_packet_payload(key_of(2), max));
  ASSERT_TRUE(sp.ok());
  EXPECT_EQ(sp->dst, key_of(2));
  EXPECT_EQ(sp->packet.size(), kMaxPacketSize);
  EXPECT_FALSE(parse_recv_packet(Bytes(31)).ok());
}

TEST(DerpFrame, PeerGoneWithoutReasonMeansDisconnected) {
  NodePublic peer = key_of(3);
  Bytes old(peer.bytes().begin(), peer.bytes().end());
  auto g = parse_peer_gone(old);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->reason, PeerGoneReason::kDisconnected);
  auto n = parse_peer_gone(peer_gone_payload(key_of(3), PeerGoneReason::kNotHere));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->peer, key_of(3));
  EXPECT_EQ(n->reason, PeerGoneReason::kNotHere);
  EXPECT_EQ(to_hex(peer_gone_payload(key_of(0xaa), PeerGoneReason::kNotHere)).substr(64), "01");
}

TEST(DerpFrame, NotePreferredMustBeExactlyOneByte) {
  EXPECT_EQ(note_preferred_payload(true), Bytes{1});
  EXPECT_TRUE(*parse_note_preferred(Bytes{1}));
  EXPECT_FALSE(*parse_note_preferred(Bytes{0}));
  EXPECT_FALSE(parse_note_preferred(Bytes{1, 0}).ok());
}

TEST(DerpFrame, PingEchoesFirstEightBytesWithinServerLimit) {
  Bytes ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_FALSE(parse_ping(ten).ok());  // the client expects exactly 8
  auto p = parse_ping(ten, 1000);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)[7], 8);
  EXPECT_FALSE(parse_ping(Bytes(7), 1000).ok());
  EXPECT_FALSE(parse_ping(Bytes(1001), 1000).ok());
}

TEST(DerpFrame, RestartingCarriesTwoBigEndianDurations) {
  auto r = parse_restarting(hex("000003e800002710"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reconnect_in_ms, 1000u);
  EXPECT_EQ(r->try_for_ms, 10000u);
  EXPECT_EQ(to_hex(restarting_payload(*r)), "000003e800002710");
}

TEST(DerpFrame, ClientInfoJsonIsWhatTailscaledSends) {
  EXPECT_EQ(client_info_json(), R"({"version":2,"CanAckPings":true})");
  std::string lower = R"({"VERSION":2,"canackpings":true})";
  auto f = parse_client_info_json(ByteView(reinterpret_cast<const std::uint8_t*>(lower.data()), lower.size()));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->version, 2);
  EXPECT_TRUE(f->can_ack_pings);
  std::string bad = "[1]";
  EXPECT_FALSE(parse_client_info_json(ByteView(reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size())).ok());
}

TEST(DerpFrame, ClientInfoNeedsKeyAndNonce) {
  EXPECT_FALSE(parse_client_info(Bytes(55)).ok());
  auto ci = parse_client_info(client_info_payload(key_of(9), Bytes(40, 1)));
  ASSERT_TRUE(ci.ok());
  EXPECT_EQ(ci->key, key_of(9));
  EXPECT_EQ(ci->sealed.size(), 40u);
}

TEST(DerpFrame, DiscoLookalikeNeedsMagicAnd62Bytes) {
  Bytes d(62, 0);
  const std::uint8_t magic[] = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
  std::copy(std::begin(magic), std::end(magic), d.begin());
  EXPECT_TRUE(looks_like_disco(d));
  EXPECT_FALSE(looks_like_disco(ByteView(d).first(61)));
  d[5] = 0;
  EXPECT_FALSE(looks_like_disco(d));
}

}  // namespace
}  // namespace tw::derp
