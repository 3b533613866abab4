#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "ipc/messages.h"
#include "ipc/netmap_parts.h"
#include "tests/unit/ipc/sample_messages.h"

namespace tw::ipc {
namespace {

using testing::sample_dataproc_peer;
using testing::sample_messages;
using testing::sample_netproc_peer;

Bytes encode_ok(const AnyMessage& m) {
  auto r = encode_message(m);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
  return r.ok() ? *r : Bytes{};
}

TEST(Codec, EveryMessageTypeSurvivesTheRoundTrip) {
  auto samples = sample_messages();
  ASSERT_EQ(samples.size(), 24u);
  for (const auto& m : samples) {
    Bytes wire = encode_ok(m);
    auto back = decode_message(wire);
    ASSERT_TRUE(back.ok()) << message_name(type_of(m)) << ": " << back.error();
    EXPECT_TRUE(*back == m) << message_name(type_of(m));
  }
}

TEST(Codec, EveryTruncationAndEveryExtraByteIsRefused) {
  for (const auto& m : sample_messages()) {
    Bytes wire = encode_ok(m);
    for (std::size_t cut = 0; cut < wire.size(); ++cut) {
      Bytes shorter(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(cut));
      EXPECT_FALSE(decode_message(shorter).ok()) << message_name(type_of(m)) << " cut " << cut;
      // Even with the header's length fixed up, a short body must not decode.
      if (cut >= kHeaderBytes) {
        store_be32(shorter.data() + 8, static_cast<std::uint32_t>(cut - kHeaderBytes));
        if (cut < wire.size()) {
          EXPECT_FALSE(decode_message(shorter).ok()) << message_name(type_of(m)) << " cut " << cut;
        }
      }
    }
    Bytes longer = wire;
    longer.push_back(0);
    EXPECT_FALSE(decode_message(longer).ok());
    store_be32(longer.data() + 8, static_cast<std::uint32_t>(longer.size() - kHeaderBytes));
    EXPECT_FALSE(decode_message(longer).ok()) << message_name(type_of(m)) << " trailing byte";
  }
}

TEST(Codec, HeaderWithWrongMagicVersionOrTypeIsRefused) {
  Bytes wire = encode_ok(Shutdown{"x"});
  Bytes bad = wire;
  bad[0] ^= 1;
  EXPECT_FALSE(decode_message(bad).ok());
  bad = wire;
  store_be16(bad.data() + 4, 2);
  EXPECT_FALSE(decode_message(bad).ok());
  bad = wire;
  store_be16(bad.data() + 6, 0);
  EXPECT_FALSE(decode_message(bad).ok());
  store_be16(bad.data() + 6, 300);
  EXPECT_FALSE(decode_message(bad).ok());
}

TEST(Codec, EncoderRefusesWhatTheReceiverWouldRefuse) {
  EXPECT_FALSE(encode_message(DerpDialRequest{1, std::string(kMaxNameBytes + 1, 'a')}).ok());
  EXPECT_FALSE(encode_message(DerpDialRequest{1, "bad\nname"}).ok());
  EndpointsUpdate many;
  many.endpoints.assign(kMaxEndpoints + 1, *IpPort::parse("198.18.0.1:1"));
  EXPECT_FALSE(encode_message(many).ok());
  many.endpoints.resize(kMaxEndpoints);
  EXPECT_TRUE(encode_message(many).ok());
  EndpointsUpdate unset;
  unset.endpoints.push_back(IpPort{});
  EXPECT_FALSE(encode_message(unset).ok());
  SealClientInfoRequest big{1, NodePublic{}, Bytes(kMaxClientInfoBytes + 1, 'x')};
  EXPECT_FALSE(encode_message(big).ok());
}

TEST(Codec, PrefixWithHostBitsOrOverlongLengthIsRefused) {
  DataprocNetmap m;
  m.peers.push_back(sample_dataproc_peer(1));
  m.peers[0].allowed_ips = {IpPrefix{*IpAddr::parse("100.64.0.1"), 24}};
  EXPECT_FALSE(encode_message(m).ok());
  m.peers[0].allowed_ips = {IpPrefix{*IpAddr::parse("100.64.0.0"), 33}};
  EXPECT_FALSE(encode_message(m).ok());
  m.peers[0].allowed_ips = {IpPrefix{*IpAddr::parse("100.64.0.0"), 10}};
  EXPECT_TRUE(encode_message(m).ok());
}

TEST(Codec, V4MappedAddressSentAsV6IsRefused) {
  Bytes wire = encode_ok(EndpointsUpdate{{*IpPort::parse("198.18.0.1:41641")}});
  // Rewrite the IPv4 entry as family 6 with ::ffff:198.18.0.1.
  std::size_t at = kHeaderBytes + 4;
  auto mapped = IpAddr::v4(198, 18, 0, 1).to16();
  wire[at] = 6;
  std::copy(mapped.begin(), mapped.end(), wire.begin() + static_cast<std::ptrdiff_t>(at + 1));
  EXPECT_FALSE(decode_message(wire).ok());
}

TEST(Codec, ForgedListCountIsRefusedBeforeAnyAllocation) {
  Bytes wire = encode_ok(EndpointsUpdate{});
  store_be32(wire.data() + kHeaderBytes, 60);  // 60 endpoints promised, none present
  auto r = decode_message(wire);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("count"), std::string::npos);
}

TEST(Codec, UnknownSetupFlagsAreRefused) {
  auto m = std::get<NetprocSetup>(sample_messages()[0]);
  m.flags = 0x80;
  EXPECT_FALSE(encode_message(m).ok());
}

TEST(NetmapParts, LargeNetmapIsSplitUnderTheLimitAndReassembledExactly) {
  std::vector<NetprocPeer> peers;
  for (std::uint32_t i = 0; i < 3000; ++i) {
    auto p = sample_netproc_peer(i);
    p.endpoints.assign(20, *IpPort::parse("198.18.3.4:5"));
    peers.push_back(p);
  }
  std::string derp(40000, ' ');
  auto parts = split_netproc_netmap(12, peers, derp, 7);
  ASSERT_TRUE(parts.ok()) << parts.error();
  ASSERT_GT(parts->size(), 3u);
  NetmapAssembler<NetprocNetmap> assembler;
  std::optional<NetprocNetmap> whole;
  for (const auto& part : *parts) {
    Bytes wire = encode_ok(part);
    EXPECT_LE(wire.size(), kMaxDatagramBytes);
    auto decoded = decode_message(wire);
    ASSERT_TRUE(decoded.ok()) << decoded.error();
    auto r = assembler.add(std::get<NetprocNetmap>(*decoded));
    ASSERT_TRUE(r.ok()) << r.error();
    whole = *r;
  }
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->generation, 12u);
  EXPECT_EQ(whole->peers, peers);
  EXPECT_EQ(whole->derp_map_json, derp);
  EXPECT_EQ(whole->home_derp, 7u);  // every part carries it; the assembler checks they agree
}

TEST(Codec, DataprocFilterThatCouldNeverMatchOrIsReversedIsRefused) {
  // The encoder checks its own output with the decoder, so these never leave a sender.
  DataprocFilter f;
  f.enabled = true;
  f.filter.rules.push_back(FilterRule{{6}, {*IpPrefix::parse("0.0.0.0/0")}, {}});  // no destination
  EXPECT_FALSE(encode_message(f).ok());
  f.filter.rules[0].dsts.push_back(FilterDst{*IpPrefix::parse("100.64.0.1/32"), 80, 79});
  EXPECT_FALSE(encode_message(f).ok());
  f.enabled = false;  // rules without a filter
  f.filter.rules[0].dsts[0].last = 80;
  EXPECT_FALSE(encode_message(f).ok());
  f.enabled = true;
  Bytes wire = encode_ok(f);
  ASSERT_TRUE(decode_message(wire).ok());
  // A forged body: the last field is the range's upper port; make it 79 < 80.
  wire[wire.size() - 2] = 0;
  wire[wire.size() - 1] = 79;
  EXPECT_FALSE(decode_message(wire).ok());
}

TEST(NetmapParts, PartsOutOfOrderOrInterleavedAreRefused) {
  std::vector<DataprocPeer> peers;
  for (std::uint32_t i = 0; i < 4000; ++i) {
    auto p = sample_dataproc_peer(i);
    p.allowed_ips.assign(10, IpPrefix{*IpAddr::parse("10.0.0.0"), 8});
    peers.push_back(p);
  }
  auto parts = split_dataproc_netmap(5, peers);
  ASSERT_TRUE(parts.ok());
  ASSERT_GE(parts->size(), 3u);
  {
    NetmapAssembler<DataprocNetmap> a;
    ASSERT_TRUE(a.add((*parts)[0]).ok());
    EXPECT_FALSE(a.add((*parts)[2]).ok());
  }
  {
    NetmapAssembler<DataprocNetmap> a;
    ASSERT_TRUE(a.add((*parts)[0]).ok());
    EXPECT_FALSE(a.add((*parts)[0]).ok());
  }
  {
    NetmapAssembler<DataprocNetmap> a;
    EXPECT_FALSE(a.add((*parts)[1]).ok());
  }
}

TEST(NetmapParts, StaleGenerationAndRepeatedPeerIdsAreRefused) {
  NetmapAssembler<DataprocNetmap> a;
  auto one = split_dataproc_netmap(5, {sample_dataproc_peer(1)});
  ASSERT_TRUE(a.add((*one)[0]).ok());
  EXPECT_FALSE(a.add((*one)[0]).ok());  // same generation again
  auto dup = split_dataproc_netmap(6, {sample_dataproc_peer(1), sample_dataproc_peer(1)});
  EXPECT_FALSE(a.add((*dup)[0]).ok());
  auto next = split_dataproc_netmap(7, {sample_dataproc_peer(1), sample_dataproc_peer(2)});
  auto r = a.add((*next)[0]);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->peers.size(), 2u);
}

// Writes the samples as fuzz seeds when asked (used to refresh the committed corpus).
TEST(Codec, WritesFuzzSeedsWhenAsked) {
  const char* dir = std::getenv("TW_IPC_WRITE_SEEDS");
  if (!dir) GTEST_SKIP() << "set TW_IPC_WRITE_SEEDS=<dir> to write seeds";
  for (const auto& m : sample_messages()) {
    Bytes wire = encode_ok(m);
    std::ofstream(std::string(dir) + "/" + std::string(message_name(type_of(m))), std::ios::binary)
        .write(reinterpret_cast<const char*>(wire.data()), static_cast<std::streamsize>(wire.size()));
  }
}

}  // namespace
}  // namespace tw::ipc
