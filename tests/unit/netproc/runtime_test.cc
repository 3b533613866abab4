// Real-socket tests of the magicsock runtime over loopback: two runtimes
// confirm a direct path and carry attributed datagrams; the binding verifier refuses
// a wrong node key; blackholing turns the route to DERP; a receive error or a
// truncated datagram does not stop the loop; operator pings never leak a waiter.
#include <fcntl.h>
#include <netinet/ip.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "netproc/disco/box.h"
#include "netproc/disco/message.h"
#include "tests/unit/netproc/rt_util.h"

namespace tw::netproc_test {
namespace {

using magicsock::PathKind;

struct Node : RuntimeNodeBase {
  Node(boost::asio::io_context& io, FakeRelay& relay,
       std::size_t rx_buffer = magicsock::kMaxDatagramBytes, Duration ping_timeout = 5s,
       const TimeSource* clock = nullptr)
      : RuntimeNodeBase(relay) {
    time = clock;
    magicsock::RuntimeConfig cfg = config(rx_buffer);
    cfg.operator_ping_timeout = ping_timeout;
    magicsock::RuntimeHooks hooks;
    hooks.deliver = [this](std::span<const ipc::OutPacket> pkts) {
      for (const auto& p : pkts) got.push_back({p.peer_id, Bytes(p.data.begin(), p.data.end())});
      return pkts.size();
    };
    build(io, cfg, std::move(hooks));
  }

  std::vector<std::pair<std::uint32_t, Bytes>> got;
};

constexpr std::uint32_t kIdOfB = 7;  // B as A's broker numbers it
constexpr std::uint32_t kIdOfA = 3;

// Two runtimes on one fake clock (see advance_until).
struct Pair {
  explicit Pair(Duration ping_timeout = 5s)
      : relay(io),
        a(io, relay, magicsock::kMaxDatagramBytes, ping_timeout, &clock),
        b(io, relay, magicsock::kMaxDatagramBytes, 5s, &clock) {
    const auto pa = a.as_peer(kIdOfA);
    const auto pb = b.as_peer(kIdOfB);
    a.rt->set_peers(std::span(&pb, 1));
    b.rt->set_peers(std::span(&pa, 1));
    a.start();
    b.start();
  }
  bool direct() { return a.rt->path_of(kIdOfB) == PathKind::kDirect && b.rt->path_of(kIdOfA) == PathKind::kDirect; }
  bool confirm_direct() {
    // Outbound traffic makes both sides want the peer; discovery runs on demand.
    const auto d = wg_data(0xAA);
    a.rt->send_wireguard(kIdOfB, d);
    b.rt->send_wireguard(kIdOfA, d);
    a.rt->flush();
    b.rt->flush();
    return run_until(io, [&] { return direct(); }, 4000ms);
  }
  // Moves the fake time on in `step`s, running both runtimes' periodic work.
  bool advance_until(Duration step, Duration limit, const std::function<bool()>& pred) {
    return netproc_test::advance_until(io, clock, {a.rt.get(), b.rt.get()}, step, limit, pred);
  }
  boost::asio::io_context io;
  FakeTimeSource clock;
  FakeRelay relay;
  Node a;
  Node b;
};

TEST(RuntimeLoopback, TwoRuntimesConfirmDirectPathAndDeliverDatagramsAttributedToTheSender) {
  Pair p;
  ASSERT_TRUE(p.confirm_direct());
  p.b.got.clear();
  const auto derp_before = p.a.relay_end.sent;
  const auto d = wg_data(0x5C, 200);
  p.a.rt->send_wireguard(kIdOfB, d);
  p.a.rt->flush();
  ASSERT_TRUE(run_until(p.io, [&] { return !p.b.got.empty(); }, 2000ms));
  EXPECT_EQ(p.b.got[0].first, kIdOfA);
  EXPECT_EQ(p.b.got[0].second, d);
  EXPECT_EQ(p.a.relay_end.sent, derp_before) << "a trusted path sends by UDP only";

  auto st = nlohmann::json::parse(p.a.rt->status_json());
  ASSERT_EQ(st["peers"].size(), 1u);
  EXPECT_EQ(st["peers"][0]["id"], kIdOfB);
  EXPECT_EQ(st["peers"][0]["path"], "direct");
  EXPECT_EQ(st["peers"][0]["endpoint"], loopback(p.b.port).to_string());
  EXPECT_GT(st["peers"][0]["trust_remaining_ms"].get<int>(), 0);
  EXPECT_EQ(st["peers"][0]["candidates"][0]["source"], "netmap");
}

TEST(RuntimeLoopback, WithoutDirectPathDatagramsTravelOverTheRelay) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  Node a(io, relay), b(io, relay);
  auto pb = b.as_peer(kIdOfB);
  pb.endpoints.clear();  // no candidate at all: DERP only
  auto pa = a.as_peer(kIdOfA);
  pa.endpoints.clear();
  a.rt->set_peers(std::span(&pb, 1));
  b.rt->set_peers(std::span(&pa, 1));
  a.start();
  b.start();
  const auto d = wg_data(0x11);
  a.rt->send_wireguard(kIdOfB, d);
  ASSERT_TRUE(run_until(io, [&] { return !b.got.empty(); }, 2000ms));
  EXPECT_EQ(b.got[0].first, kIdOfA);
  EXPECT_EQ(b.got[0].second, d);
  EXPECT_EQ(a.rt->path_of(kIdOfB), PathKind::kDerp);
}

Bytes sealed_ping(const DiscoPrivate& from, const DiscoPublic& to, const NodePublic& claimed) {
  auto key = disco::DiscoSharedKey::derive(from, to);
  EXPECT_TRUE(static_cast<bool>(key));
  disco::Ping ping;
  ping.txid = disco::new_txid();
  ping.node_key = claimed;
  Bytes out(512);
  out.resize(disco::seal_message(*key, from.public_key(), ping, out));
  return out;
}

std::optional<Bytes> recv_within(int fd, std::chrono::milliseconds wait, boost::asio::io_context& io) {
  std::optional<Bytes> got;
  run_until(io, [&] {
    std::uint8_t buf[2048];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got = Bytes(buf, buf + n);
    return got.has_value();
  }, wait);
  return got;
}

TEST(RuntimeLoopback, PingClaimingAnotherNodeKeyGetsNoPongWhileTheRightKeyDoes) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  Node a(io, relay);
  // The third party knows B's disco key (it is a netmap member) but claims C's node key.
  const DiscoPrivate b_disco = DiscoPrivate::generate();
  const NodePublic b_node = NodePrivate::generate().public_key();
  const NodePublic c_node = NodePrivate::generate().public_key();
  magicsock::RuntimePeer pb{kIdOfB, b_node, b_disco.public_key(), {}, 1};
  a.rt->set_peers(std::span(&pb, 1));
  a.start();
  auto third = bind_loopback();

  send_to(third.get(), loopback(a.port), sealed_ping(b_disco, a.disco.public_key(), c_node));
  // Refused when handled; a pong would have been sent in the same turn of the loop.
  ASSERT_TRUE(run_until(
      io, [&] { return a.metrics.value("disco_ping_recv_rejected_total") == 1; }, 2000ms));
  EXPECT_FALSE(recv_within(third.get(), 0ms, io).has_value())
      << "a wrong binding must get nothing back";

  send_to(third.get(), loopback(a.port), sealed_ping(b_disco, a.disco.public_key(), b_node));
  auto pong = recv_within(third.get(), 1000ms, io);
  ASSERT_TRUE(pong.has_value()) << "the control: the true binding is answered";
  EXPECT_TRUE(disco::looks_like_disco(*pong));
}

TEST(RuntimeLoopback, BlackholedPathLosesTrustWithinTrustWindowAndTrafficTurnsToRelay) {
  Pair p;
  ASSERT_TRUE(p.confirm_direct());
  // B stops answering: its socket is gone.
  p.b.rt->release_udp();
  const TimePoint t0 = p.clock.now();
  std::uint8_t marker = 1;
  auto sender = [&] {
    p.a.rt->send_wireguard(kIdOfB, wg_data(marker++));
    p.a.rt->flush();
    return p.a.rt->path_of(kIdOfB) != PathKind::kDirect;
  };
  ASSERT_TRUE(p.advance_until(50ms, 8000ms, sender));
  const Duration lapse = p.clock.now() - t0;
  EXPECT_LE(lapse, 7000ms) << "trust lasts 6.5 s after the last pong";
  EXPECT_GE(lapse, 2500ms) << "a fresh pong keeps trust for at least 3.5 s";
  EXPECT_EQ(p.a.rt->path_of(kIdOfB), PathKind::kDerp);
  // What A sends now reaches B through the relay, attributed to A.
  p.b.got.clear();
  p.a.rt->send_wireguard(kIdOfB, wg_data(0xEE));
  ASSERT_TRUE(run_until(p.io, [&] { return !p.b.got.empty(); }, 1000ms));
  EXPECT_EQ(p.b.got.back().first, kIdOfA);
}

// tailwarden status during a failover: still "direct" (trusted), but the state says
// failing_over and the route UDP+DERP, which is what packets really do.
TEST(RuntimeLoopback, StatusShowsFailingOverWhileADeadPathIsStillTrusted) {
  Pair p;
  ASSERT_TRUE(p.confirm_direct());
  p.b.rt->release_udp();
  std::uint8_t marker = 1;
  nlohmann::json peer;
  auto failing_over = [&] {
    const auto derp_before = p.a.relay_end.sent;
    p.a.rt->send_wireguard(kIdOfB, wg_data(marker++));
    p.a.rt->flush();
    peer = nlohmann::json::parse(p.a.rt->status_json())["peers"][0];
    if (peer["state"] != "failing_over") return false;
    EXPECT_GT(p.a.relay_end.sent, derp_before) << "failing over sends over DERP too";
    return true;
  };
  ASSERT_TRUE(p.advance_until(50ms, 7000ms, failing_over)) << peer.dump();
  EXPECT_EQ(peer["path"], "direct");
  EXPECT_EQ(peer["route"], "udp+derp");
  EXPECT_EQ(peer["endpoint"], loopback(p.b.port).to_string());
  EXPECT_GT(peer["trust_remaining_ms"].get<int>(), 0);
}

TEST(RuntimeLoopback, ReceiveErrorOnOneDatagramDoesNotStopTheLoop) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  Node a(io, relay);
  // Queue ICMP errors on A's socket: a closed port as a wireguard_only peer's endpoint.
  const int on = 1;
  ASSERT_EQ(::setsockopt(a.udp.get(), IPPROTO_IP, IP_RECVERR, &on, sizeof on), 0);
  std::uint16_t closed_port;
  {
    auto tmp = bind_loopback();
    closed_port = port_of(tmp.get());
  }
  magicsock::RuntimePeer wg_only{9, NodePrivate::generate().public_key(), DiscoPublic{}, {loopback(closed_port)}, 0};
  a.rt->set_peers(std::span(&wg_only, 1));
  a.start();
  a.rt->send_wireguard(9, wg_data(1));
  a.rt->flush();
  ASSERT_TRUE(run_until(io, [&] { return a.rt->udp_counters().rx_errors.value() > 0; }, 2000ms));
  auto other = bind_loopback();
  send_to(other.get(), loopback(a.port), wg_data(0x42));
  ASSERT_TRUE(run_until(io, [&] { return !a.got.empty(); }, 2000ms)) << "the loop kept reading";
  EXPECT_EQ(a.got[0].first, 0u) << "an unknown source is left to dataproc (hint 0)";
  EXPECT_EQ(a.rt->counters().wg_rx_unattributed.value(), 1u);
}

TEST(RuntimeLoopback, TruncatedDatagramIsDroppedAndCountedAndTheNextIsDelivered) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  Node a(io, relay, /*rx_buffer=*/2048);
  a.start();
  auto other = bind_loopback();
  send_to(other.get(), loopback(a.port), wg_data(0x01, 4000));
  send_to(other.get(), loopback(a.port), wg_data(0x02, 100));
  ASSERT_TRUE(run_until(io, [&] { return !a.got.empty(); }, 2000ms));
  EXPECT_EQ(a.rt->udp_counters().rx_truncated.value(), 1u);
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_EQ(a.got[0].second, wg_data(0x02, 100));
}

TEST(RuntimeLoopback, OperatorPingReportsDirectPathAndLatency) {
  Pair p;
  ASSERT_TRUE(p.confirm_direct());
  std::optional<std::string> reply;
  p.a.rt->ping(kIdOfB, [&](const std::string& s) { reply = s; });
  ASSERT_TRUE(run_until(p.io, [&] { return reply.has_value(); }, 2000ms));
  auto j = nlohmann::json::parse(*reply);
  EXPECT_EQ(j["via"], "direct") << *reply;
  EXPECT_EQ(j["endpoint"], loopback(p.b.port).to_string());
  EXPECT_GE(j["latency_ms"].get<double>(), 0.0);
  EXPECT_EQ(p.a.rt->pending_operator_pings(), 0u);
}

TEST(RuntimeLoopback, OperatorPingToSilentPeerTimesOutAndLeavesNoWaiter) {
  Pair p(300ms);
  ASSERT_TRUE(p.confirm_direct());
  p.b.rt->release_udp();
  p.relay.up = false;  // nothing answers anywhere
  std::optional<std::string> reply;
  p.a.rt->ping(kIdOfB, [&](std::string s) { reply = s; });
  EXPECT_EQ(p.a.rt->pending_operator_pings(), 1u);
  ASSERT_TRUE(p.advance_until(50ms, 2000ms, [&] { return reply.has_value(); }));
  EXPECT_EQ(nlohmann::json::parse(*reply)["timeout"], true);
  EXPECT_EQ(p.a.rt->pending_operator_pings(), 0u);
  // A waiter pending at shutdown is answered too.
  std::optional<std::string> late;
  p.a.rt->ping(kIdOfB, [&](std::string s) { late = s; });
  p.a.rt->stop();
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(p.a.rt->pending_operator_pings(), 0u);
}

TEST(RuntimeLoopback, ReleaseUdpClosesTheSocketAndANewSocketIsAdopted) {
  Pair p;
  ASSERT_TRUE(p.confirm_direct());
  p.a.rt->release_udp();
  EXPECT_FALSE(p.a.rt->has_udp());
  // The string topics are gone (typed OperatorPing / ReleaseUdp messages now).
  std::optional<std::string> reply;
  p.a.rt->status_request("release-udp", [&](std::string s) { reply = s; });
  ASSERT_TRUE(reply.has_value());
  EXPECT_NE(reply->find("unknown topic"), std::string::npos);
  auto fresh = bind_loopback();
  const auto port = port_of(fresh.get());
  p.a.rt->adopt_udp(std::move(fresh));
  EXPECT_EQ(p.a.rt->local_port(), port);
  EXPECT_NE(p.a.rt->path_of(kIdOfB), PathKind::kDirect) << "rebind clears trust";
  // Re-pinged at once: the candidate kept from the netmap becomes direct again.
  const auto d = wg_data(3);
  p.a.rt->send_wireguard(kIdOfB, d);
  p.a.rt->flush();
  EXPECT_TRUE(run_until(p.io, [&] { return p.a.rt->path_of(kIdOfB) == PathKind::kDirect; }, 4000ms));
}

}  // namespace
}  // namespace tw::netproc_test

namespace tw::netproc_test {
namespace {

TEST(RuntimeRelayedDisco, RelayedPingIsAnsweredOverTheRelayOnlyForTheTrueBinding) {
  Pair p;
  const int before = p.a.relay_end.sent;
  // B's disco key claiming a stranger's node key, relayed from B's node: refused.
  p.a.rt->on_derp_packet(p.b.node, 1, sealed_ping(p.b.disco, p.a.disco.public_key(), NodePrivate::generate().public_key()));
  EXPECT_EQ(p.a.relay_end.sent, before);
  // The true binding: a pong goes back over the relay (the reference drops these).
  p.a.rt->on_derp_packet(p.b.node, 1, sealed_ping(p.b.disco, p.a.disco.public_key(), p.b.node));
  EXPECT_EQ(p.a.relay_end.sent, before + 1);
  ASSERT_TRUE(run_until(p.io, [&] { return p.b.metrics.value("disco_pong_recv_total") > 0; }, 1000ms));
}

TEST(RuntimeRelayedDisco, CallMeMaybeOverUdpIsRefused) {
  Pair p;
  auto key = disco::DiscoSharedKey::derive(p.b.disco, p.a.disco.public_key());
  ASSERT_TRUE(static_cast<bool>(key));
  disco::CallMeMaybe cmm;
  cmm.endpoints.push_back(*IpPort::parse("203.0.113.7:41641"));
  Bytes out(512);
  out.resize(disco::seal_message(*key, p.b.disco.public_key(), cmm, out));
  auto third = bind_loopback();
  send_to(third.get(), loopback(p.a.port), out);
  ASSERT_TRUE(run_until(p.io, [&] { return p.a.rt->counters().disco_rx_cmm_over_udp.value() == 1; }, 1000ms));
  EXPECT_EQ(p.a.metrics.value("disco_call_me_maybe_recv_total"), 0u);
}

// Tailscale v1.102 has disco types 4-9 (peer relay) that we do not implement: sealed by a
// member, over UDP or DERP, each is dropped without a reply and counted apart from
// malformed messages.
TEST(RuntimeRelayedDisco, UnknownDiscoTypesAreDroppedAndCountedApartFromMalformedOnes) {
  Pair p;
  auto key = disco::DiscoSharedKey::derive(p.b.disco, p.a.disco.public_key());
  ASSERT_TRUE(static_cast<bool>(key));
  auto sealed = [&](std::uint8_t code) {
    Bytes out(512);
    out.resize(
        disco::seal_message(*key, p.b.disco.public_key(), disco::UnknownMessage{code, 0}, out));
    return out;
  };
  const int relayed_before = p.a.relay_end.sent;
  auto third = bind_loopback();
  for (std::uint8_t code = 4; code <= 9; ++code)
    send_to(third.get(), loopback(p.a.port), sealed(code));
  ASSERT_TRUE(run_until(
      p.io, [&] { return p.a.rt->counters().disco_rx_unknown_type.value() == 6; }, 1000ms));
  p.a.rt->on_derp_packet(p.b.node, 1, sealed(8));
  EXPECT_EQ(p.a.rt->counters().disco_rx_unknown_type.value(), 7u);
  EXPECT_EQ(p.a.rt->counters().disco_rx_bad_message.value(), 0u);
  EXPECT_EQ(p.a.relay_end.sent, relayed_before);
}

}  // namespace
}  // namespace tw::netproc_test

namespace tw::netproc_test {
namespace {

// A pong relayed over DERP with the txid of a UDP ping in flight must not make the
// pinged UDP address a trusted path: only a pong over UDP proves that path.
TEST(RuntimeRelayedDisco, RelayedPongCarryingAUdpPingTxidNeverTrustsTheUdpPath) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  Node a(io, relay);
  const DiscoPrivate b_disco = DiscoPrivate::generate();
  const NodePublic b_node = NodePrivate::generate().public_key();
  auto silent = bind_loopback();  // B's only endpoint: a socket that never answers
  const magicsock::RuntimePeer b{
      kIdOfB, b_node, b_disco.public_key(), {loopback(port_of(silent.get()))}, 1};
  a.rt->set_peers(std::span(&b, 1));
  a.start();
  a.rt->send_wireguard(kIdOfB, wg_data(1));
  a.rt->flush();

  // A pings the endpoint over UDP; we read the ping as B would and learn its txid.
  auto key = disco::DiscoSharedKey::derive(b_disco, a.disco.public_key());
  ASSERT_TRUE(static_cast<bool>(key));
  std::optional<disco::TxId> txid;
  ASSERT_TRUE(run_until(
      io,
      [&] {
        std::uint8_t buf[2048];
        const ssize_t n = ::recv(silent.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0 || !disco::looks_like_disco(ByteView(buf, static_cast<std::size_t>(n))))
          return false;
        std::uint8_t plain[2048];
        auto opened = disco::open(*key, ByteView(buf, static_cast<std::size_t>(n)),
                                  MutableByteView(plain, sizeof plain));
        if (!opened.ok()) return false;
        auto msg = disco::parse_message(opened.plaintext);
        if (!msg || !std::holds_alternative<disco::Ping>(*msg)) return false;
        txid = std::get<disco::Ping>(*msg).txid;
        return true;
      },
      3000ms));

  // The pong comes back over DERP, from B's node, sealed by B's disco key.
  disco::Pong pong;
  pong.txid = *txid;
  pong.src = loopback(a.port);
  Bytes sealed(512);
  sealed.resize(disco::seal_message(*key, b_disco.public_key(), pong, sealed));
  a.rt->on_derp_packet(b_node, 1, sealed);
  io.poll();
  EXPECT_EQ(a.rt->counters().disco_rx_relayed_pong_ignored.value(), 1u);
  EXPECT_NE(a.rt->path_of(kIdOfB), PathKind::kDirect) << "a relayed pong trusted the UDP path";
  EXPECT_EQ(a.metrics.value("disco_pong_recv_solicited_total"), 0u);
}

}  // namespace
}  // namespace tw::netproc_test

namespace tw::netproc_test {
namespace {

// The receive loop's wait failing (here: an fd epoll refuses, as a socket in a broken
// state would) must reach the owner through udp_failed, never stop silently.
TEST(RuntimeLoopback, AFailedWaitOnTheUnderlayIsReportedNotSilent) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RuntimeNodeBase n(relay);
  std::string reported;
  magicsock::RuntimeHooks hooks;
  hooks.deliver = [](std::span<const ipc::OutPacket> p) { return p.size(); };
  hooks.udp_failed = [&](const std::string& why) { reported = why; };
  n.build(io, n.config(magicsock::kMaxDatagramBytes), std::move(hooks));
  n.udp = ipc::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));  // epoll: EPERM
  ASSERT_TRUE(n.udp.valid());
  n.start();
  ASSERT_TRUE(run_until(
      io, [&] { return !reported.empty(); }, 2000ms))
      << "the failed wait was swallowed";
}

}  // namespace
}  // namespace tw::netproc_test
