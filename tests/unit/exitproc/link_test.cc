// The broker <-> exitproc link codecs: round trips, exact lengths, fd counts, limits.
#include "exitproc/link.h"

#include <gtest/gtest.h>

namespace tw::exitproc {
namespace {

ExitSetup sample_setup() {
  ExitSetup s;
  s.kind = ProxyKind::kHttpConnect;
  s.proxy_host = "198.18.5.2:3128";
  s.username = "alice";
  s.password = "s3cret pass";
  s.dns_resolver = {198, 18, 9, 53};
  s.limits.max_flows = 100;
  s.limits.max_flows_per_source = 10;
  return s;
}

TEST(ExitLinkTest, SetupRoundTripsWithExactlyThreeFds) {
  const ExitSetup s = sample_setup();
  const Bytes d = encode_link(ToExitproc(s));
  auto back = decode_to_exitproc(d, 3);
  ASSERT_TRUE(back.ok()) << back.error();
  const auto& got = std::get<ExitSetup>(*back);
  EXPECT_EQ(got.kind, ProxyKind::kHttpConnect);
  EXPECT_EQ(got.proxy_host, s.proxy_host);
  EXPECT_EQ(got.username, "alice");
  EXPECT_EQ(got.password, "s3cret pass");
  EXPECT_EQ(got.dns_resolver, s.dns_resolver);
  EXPECT_EQ(got.limits, s.limits);
  for (std::size_t fds : {0u, 1u, 2u, 4u}) EXPECT_FALSE(decode_to_exitproc(d, fds).ok()) << fds;
  EXPECT_FALSE(decode_to_broker(d, 0).ok()) << "broker-bound decoder refuses exitproc types";
}

TEST(ExitLinkTest, EveryTruncationAndExtensionIsRefused) {
  const Bytes d = encode_link(ToExitproc(sample_setup()));
  for (std::size_t n = 0; n < d.size(); ++n) {
    Bytes cut(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(decode_to_exitproc(cut, 3).ok()) << n;
  }
  Bytes longer = d;
  longer.push_back(0);
  EXPECT_FALSE(decode_to_exitproc(longer, 3).ok()) << "length field no longer matches";
  store_be32(&longer[8], load_be32(&longer[8]) + 1);
  EXPECT_FALSE(decode_to_exitproc(longer, 3).ok()) << "trailing byte inside the body";
  for (std::size_t i : {0u, 4u, 5u, 7u}) {
    Bytes bad = d;
    bad[i] ^= 0x40;
    EXPECT_FALSE(decode_to_exitproc(bad, 3).ok()) << "header byte " << i;
  }
}

TEST(ExitLinkTest, SetupFieldsAreValidated) {
  auto refused = [](ExitSetup s) {
    return !decode_to_exitproc(encode_link(ToExitproc(s)), 3).ok();
  };
  ExitSetup s = sample_setup();
  s.username = std::string(256, 'u');
  EXPECT_TRUE(refused(s)) << "RFC 1929 ULEN is at most 255";
  s = sample_setup();
  s.password = std::string("a\nb");
  EXPECT_TRUE(refused(s)) << "control character";
  s = sample_setup();
  s.username = "";
  EXPECT_TRUE(refused(s)) << "password without username";
  s = sample_setup();
  s.username = "a:b";
  EXPECT_TRUE(refused(s)) << "colon in a Basic username";
  s.kind = ProxyKind::kSocks5;
  EXPECT_FALSE(refused(s)) << "a colon is fine for SOCKS5";
  s = sample_setup();
  s.limits.max_flows = 0;
  EXPECT_TRUE(refused(s));
  s = sample_setup();
  s.limits.max_flows_per_source = s.limits.max_flows + 1;
  EXPECT_TRUE(refused(s));
  s = sample_setup();
  s.limits.idle_timeout_ms = 5;
  EXPECT_TRUE(refused(s));
  s = sample_setup();
  s.dns_resolver = {0, 0, 0, 0};
  EXPECT_TRUE(refused(s));
  Bytes d = encode_link(ToExitproc(sample_setup()));
  d[kLinkHeaderBytes] = 3;  // proxy kind
  EXPECT_FALSE(decode_to_exitproc(d, 3).ok());
}

TEST(ExitLinkTest, ProxyConnNeedsOneFdAndOthersNone) {
  const Bytes c = encode_link(ToExitproc(ProxyConn{42}));
  auto back = decode_to_exitproc(c, 1);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(std::get<ProxyConn>(*back).flow, 42u);
  EXPECT_FALSE(decode_to_exitproc(c, 0).ok());
  EXPECT_FALSE(decode_to_exitproc(c, 2).ok());
  const Bytes f = encode_link(ToExitproc(ProxyDialFailed{7, "connect: Connection refused"}));
  auto fb = decode_to_exitproc(f, 0);
  ASSERT_TRUE(fb.ok()) << fb.error();
  EXPECT_EQ(std::get<ProxyDialFailed>(*fb).flow, 7u);
  EXPECT_EQ(std::get<ProxyDialFailed>(*fb).reason, "connect: Connection refused");
  EXPECT_FALSE(decode_to_exitproc(f, 1).ok());
  const Bytes q = encode_link(ToExitproc(StatsRequest{}));
  EXPECT_EQ(q.size(), kLinkHeaderBytes);
  EXPECT_TRUE(decode_to_exitproc(q, 0).ok());
  EXPECT_FALSE(decode_to_exitproc(q, 1).ok());
}

TEST(ExitLinkTest, BrokerBoundMessagesRoundTripAndCarryNoFds) {
  const Bytes d = encode_link(ToBroker(DialProxy{99}));
  auto back = decode_to_broker(d, 0);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(std::get<DialProxy>(*back).flow, 99u);
  EXPECT_FALSE(decode_to_broker(d, 1).ok());
  ExitStats s;
  s.flows_open = 3;
  s.flows_total = 10;
  s.bytes_up = 1000;
  s.bytes_down = 2000;
  s.refusals[static_cast<std::size_t>(Refusal::kAuthRefused)] = 5;
  s.refusals[static_cast<std::size_t>(Refusal::kNoDestination)] = 6;
  s.dns_queries = 4;
  s.dns_ok = 3;
  s.dns_failed = 1;
  s.udp_dropped = 8;
  s.proxy_ok = true;
  s.last_proxy_error = "auth_refused: socks5 status 1";
  const Bytes e = encode_link(ToBroker(s));
  auto sb = decode_to_broker(e, 0);
  ASSERT_TRUE(sb.ok()) << sb.error();
  const auto& got = std::get<ExitStats>(*sb);
  EXPECT_EQ(got.flows_total, 10u);
  EXPECT_EQ(got.bytes_down, 2000u);
  EXPECT_EQ(got.refusals, s.refusals);
  EXPECT_EQ(got.udp_dropped, 8u);
  EXPECT_TRUE(got.proxy_ok);
  EXPECT_EQ(got.last_proxy_error, s.last_proxy_error);
  Bytes bad = e;
  bad[bad.size() - 4 - s.last_proxy_error.size() - 1] = 2;  // proxy_ok byte
  EXPECT_FALSE(decode_to_broker(bad, 0).ok());
  EXPECT_FALSE(decode_to_exitproc(e, 0).ok());
  EXPECT_STREQ(refusal_name(Refusal::kLimitPerSource), "limit_per_source");
}

}  // namespace
}  // namespace tw::exitproc
