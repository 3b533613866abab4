// The timers of the WireGuard paper, driven by a fake clock: rekey, reject,
// keepalive, handshake retry with jitter, giving up, and key erasure.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "tests/unit/wireguard/wg_test_util.h"

namespace tw::wg::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class Timers : public TwoNodes {};

std::size_t count_type(const std::vector<Captured>& v, std::uint32_t type) {
  std::size_t n = 0;
  for (const auto& c : v) n += message_type(c.bytes) == type;
  return n;
}

TEST_F(Timers, InitiatorRekeysAfter120SecondsAndConfirmsWithKeepalive) {
  establish();
  clock.advance(kRekeyAfterTime - seconds(1));
  send_a_to_b();
  EXPECT_EQ(count_type(take(a.out.to_network), 1), 0u);
  clock.advance(seconds(2));
  send_a_to_b();
  auto out = take(a.out.to_network);
  EXPECT_EQ(count_type(out, 4), 1u);  // the data still goes out on the old session
  ASSERT_EQ(count_type(out, 1), 1u);
  for (auto& c : out)
    if (message_type(c.bytes) == 1) deliver(a, c.bytes);
  auto resp = take(b.out.to_network);
  ASSERT_EQ(count_type(resp, 2), 1u);
  deliver(b, resp[0].bytes);
  auto confirm = take(a.out.to_network);
  ASSERT_EQ(confirm.size(), 1u);
  EXPECT_EQ(confirm[0].bytes.size(), kTransportMinSize);  // empty keepalive
  deliver(a, confirm[0].bytes);
  EXPECT_TRUE(b.dev.has_session(1, now()));
  EXPECT_EQ(a.dev.peer_counters(2)->handshakes_completed, 2u);
}

TEST_F(Timers, ResponderDoesNotRekeyOnAge) {
  establish();
  clock.advance(kRekeyAfterTime + seconds(1));
  send_b_to_a();
  auto out = take(b.out.to_network);
  EXPECT_EQ(count_type(out, 1), 0u);
  EXPECT_EQ(count_type(out, 4), 1u);
}

TEST_F(Timers, SessionIsRejectedAfter180Seconds) {
  establish();
  send_a_to_b();
  auto old_packet = take(a.out.to_network)[0].bytes;
  clock.advance(kRejectAfterTime + seconds(1));
  deliver(a, old_packet);
  EXPECT_EQ(b.dev.counters().expired_sessions, 1u);
  EXPECT_EQ(b.tun.size(), 1u);
  EXPECT_FALSE(a.dev.has_session(2, now()));
  send_a_to_b();
  auto out = take(a.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(message_type(out[0].bytes), 1u);  // no data on a dead session: handshake
}

TEST_F(Timers, PreviousSessionStillDecryptsInFlightPacketsAfterRekey) {
  establish();
  send_a_to_b();
  auto in_flight = take(a.out.to_network)[0].bytes;
  clock.advance(kRekeyAfterTime + seconds(1));
  send_a_to_b();
  pump();  // rekey completes, the old session becomes `previous`
  deliver(a, in_flight);
  EXPECT_EQ(b.tun.size(), 3u);
  EXPECT_EQ(b.dev.counters().decryption_failures + b.dev.counters().unknown_index, 0u);
}

TEST_F(Timers, KeepaliveFollowsReceivedDataAfterTenSecondsOfSilence) {
  establish();  // b received a data packet and sent nothing back
  clock.advance(kKeepaliveTimeout - milliseconds(1));
  timers();
  EXPECT_TRUE(b.out.to_network.empty());
  clock.advance(milliseconds(2));
  timers();
  auto out = take(b.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes.size(), kTransportMinSize);
  deliver(b, out[0].bytes);
  EXPECT_EQ(a.dev.peer_counters(2)->keepalives_received, 1u);
  EXPECT_TRUE(a.tun.empty());
}

TEST_F(Timers, NoKeepaliveWhenDataWentBack) {
  establish();
  send_b_to_a();
  pump();
  clock.advance(kKeepaliveTimeout + seconds(1));
  timers();
  EXPECT_TRUE(b.out.to_network.empty());
}

TEST_F(Timers, UnansweredDataTriggersNewHandshakeAfterFifteenSeconds) {
  establish();
  send_a_to_b();
  take(a.out.to_network);  // lost
  take(b.out.to_network);
  clock.advance(kKeepaliveTimeout + kRekeyTimeout - milliseconds(1));
  a.dev.on_timer(now(), a.out);
  EXPECT_EQ(count_type(take(a.out.to_network), 1), 0u);
  clock.advance(kRekeyTimeoutJitterMax + milliseconds(2));
  a.dev.on_timer(now(), a.out);
  EXPECT_EQ(count_type(take(a.out.to_network), 1), 1u);
}

TEST_F(Timers, LostInitiationIsRetriedAfterRekeyTimeoutWithJitter) {
  send_a_to_b();
  take(a.out.to_network);  // lost
  clock.advance(kRekeyTimeout - milliseconds(1));
  a.dev.on_timer(now(), a.out);
  EXPECT_TRUE(a.out.to_network.empty());
  auto deadline = a.dev.next_deadline();
  ASSERT_TRUE(deadline.has_value());
  EXPECT_GE(*deadline - now(), milliseconds(1));
  EXPECT_LE(*deadline - now(), kRekeyTimeoutJitterMax + milliseconds(1));
  clock.set(*deadline);
  a.dev.on_timer(now(), a.out);
  auto out = take(a.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(message_type(out[0].bytes), 1u);
  // The retry completes the handshake and the staged packet is delivered.
  deliver(a, out[0].bytes);
  pump();
  EXPECT_EQ(b.tun.size(), 1u);
}

// The jitter added to each retry: within [0, REKEY_TIMEOUT_JITTER_MAX], not one
// fixed value, and not the same sequence on two devices (each seeds its own
// generator from libsodium; equal sequences by chance: 334^-12).
TEST_F(Timers, RetryJitterIsBoundedVariedAndSeededPerDevice) {
  auto jitters = [this](Node& n, const std::function<void()>& send) {
    std::vector<std::int64_t> ms;
    send();
    take(n.out.to_network);  // the first initiation, lost
    TimePoint sent = now();
    for (int i = 0; i < 12; ++i) {
      auto deadline = n.dev.next_deadline();
      if (!deadline.has_value()) {
        ADD_FAILURE() << "no retry deadline";
        break;
      }
      const auto jitter = *deadline - sent - kRekeyTimeout;
      EXPECT_GE(jitter, Duration::zero());
      EXPECT_LE(jitter, kRekeyTimeoutJitterMax);
      ms.push_back(std::chrono::duration_cast<milliseconds>(jitter).count());
      clock.set(*deadline);
      n.dev.on_timer(now(), n.out);
      EXPECT_EQ(count_type(take(n.out.to_network), 1), 1u);  // the retry, lost too
      sent = now();
    }
    return ms;
  };
  const auto from_a = jitters(a, [this] { send_a_to_b(); });
  const auto from_b = jitters(b, [this] { send_b_to_a(); });
  ASSERT_EQ(from_a.size(), 12u);
  EXPECT_NE(std::adjacent_find(from_a.begin(), from_a.end(), std::not_equal_to<>()), from_a.end())
      << "the jitter never changes";
  EXPECT_NE(from_a, from_b);
}

TEST_F(Timers, RetriesStopAfterRekeyAttemptTimeAndStagedDataIsDropped) {
  send_a_to_b();
  std::size_t initiations = count_type(take(a.out.to_network), 1);
  for (int i = 0; i < 40; ++i) {
    clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax + milliseconds(1));
    a.dev.on_timer(now(), a.out);
    initiations += count_type(take(a.out.to_network), 1);
  }
  // The first initiation and one retry for each attempt count 0..18, as the kernel.
  EXPECT_EQ(initiations, 2u + static_cast<std::size_t>(kMaxHandshakeAttempts));
  EXPECT_EQ(a.dev.counters().handshake_timeouts, 1u);
  EXPECT_EQ(a.dev.counters().staged_dropped, 1u);
}

TEST_F(Timers, InitiationsAreRateLimitedToOnePerRekeyTimeout) {
  send_a_to_b();
  send_a_to_b();
  clock.advance(seconds(1));
  send_a_to_b();
  EXPECT_EQ(count_type(take(a.out.to_network), 1), 1u);
}

TEST_F(Timers, KeysAreErasedAfterThreeRejectTimes) {
  establish();
  send_a_to_b();
  auto old_packet = take(a.out.to_network)[0].bytes;
  clock.advance(3 * kRejectAfterTime + seconds(1));
  timers();
  take(a.out.to_network);
  take(b.out.to_network);
  deliver(a, old_packet);
  // The session is gone entirely, not merely expired.
  EXPECT_EQ(b.dev.counters().unknown_index, 1u);
  EXPECT_EQ(b.dev.counters().expired_sessions, 0u);
}

TEST_F(Timers, PersistentKeepaliveIsSentOnSchedule) {
  a.dev.set_peers({PeerConfig{2, b.key.public_key(), {*IpPrefix::parse("100.64.0.2/32")},
                              seconds(25)}});
  establish();
  clock.advance(kKeepaliveTimeout + milliseconds(500));
  timers();
  pump();  // b's keepalive reaches a; a's schedule restarts from here
  clock.advance(seconds(25) - milliseconds(100));
  a.dev.on_timer(now(), a.out);
  EXPECT_TRUE(a.out.to_network.empty());
  clock.advance(milliseconds(200));
  a.dev.on_timer(now(), a.out);
  auto out = take(a.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes.size(), kTransportMinSize);
}

}  // namespace
}  // namespace tw::wg::testing
