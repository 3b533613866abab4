// The exitproc event loop in-process, the test playing the broker (the link) and the
// upstream proxy (the far end of the socket passed as ProxyConn), with a fake clock
// for the timeouts. The listener and UDP sockets are real, on loopback; without an
// nft redirect there is no SO_ORIGINAL_DST, so these tests use the fixed test
// destination (the real redirect is covered by tests/integration/exitproc).
#include "exitproc/app.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "common/keys.h"
#include "ipc/control_socket.h"

namespace tw::exitproc {
namespace {

using ipc::UniqueFd;

UniqueFd bound(int type, sockaddr_in& sa) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t l = sizeof sa;
  EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &l), 0);
  if (type == SOCK_STREAM) {
    EXPECT_EQ(::listen(fd.get(), 64), 0);
  }
  return fd;
}

class ExitAppTest : public ::testing::Test {
 protected:
  void start(ProxyKind kind, ExitLimits limits = {}, std::string user = "u", std::string pass = "p",
             std::size_t fd_budget = 1024) {
    crypto_init();
    auto pair = ipc::make_control_pair();
    ASSERT_TRUE(pair.ok());
    broker_ = std::move(pair->first);
    child_ = std::move(pair->second);
    ASSERT_TRUE(ipc::set_nonblocking(broker_.get()).ok());
    ASSERT_TRUE(ipc::set_nonblocking(child_.get()).ok());
    AppOptions o;
    o.test_fixed_destination = *IpPort::parse("198.18.7.80:8080");
    o.fd_budget = fd_budget;
    app_ = std::make_unique<App>(child_.get(), clock_, o);
    UniqueFd lst = bound(SOCK_STREAM, listen_addr_);
    UniqueFd dns = bound(SOCK_DGRAM, dns_addr_);
    UniqueFd udp = bound(SOCK_DGRAM, udp_addr_);
    ExitSetup s;
    s.kind = kind;
    s.username = std::move(user);
    s.password = std::move(pass);
    s.dns_resolver = {198, 18, 9, 53};
    s.limits = limits;
    const int fds[] = {lst.get(), dns.get(), udp.get()};
    ASSERT_TRUE(ipc::send_datagram(broker_.get(), encode_link(ToExitproc(s)), fds).ok());
    spin();
  }

  void spin(int rounds = 5) {
    for (int i = 0; i < rounds; ++i)
      ASSERT_TRUE(app_->poll_once(1)) << "exit code " << app_->exit_code();
  }

  bool run_until(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      if (!app_->poll_once(2)) return false;
    }
    return done();
  }

  std::optional<ToBroker> from_app() {
    std::optional<ToBroker> got;
    run_until([&] {
      ipc::ReceivedDatagram d;
      auto r = ipc::receive_datagram(broker_.get(), kMaxLinkDatagram, d);
      if (!r.ok() || *r != ipc::ReceiveOutcome::kDatagram) return false;
      auto m = decode_to_broker(d.bytes, d.fds.size());
      EXPECT_TRUE(m.ok()) << m.error();
      if (m.ok()) got = *m;
      return true;
    });
    return got;
  }

  std::uint64_t expect_dial() {
    auto m = from_app();
    EXPECT_TRUE(m && std::holds_alternative<DialProxy>(*m));
    return m ? std::get<DialProxy>(*m).flow : 0;
  }

  UniqueFd client() {
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&listen_addr_), sizeof listen_addr_),
              0);
    return c;
  }

  // Hands the app one end of a stream pair as its proxy connection; returns the other.
  UniqueFd give_proxy(std::uint64_t flow) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd ours(sv[0]);
    UniqueFd theirs(sv[1]);
    const int fds[] = {theirs.get()};
    EXPECT_TRUE(
        ipc::send_datagram(broker_.get(), encode_link(ToExitproc(ProxyConn{flow})), fds).ok());
    spin();
    return ours;
  }

  // Reads exactly n bytes from fd while the loop runs.
  Bytes read_n(int fd, std::size_t n) {
    Bytes out;
    run_until([&] {
      std::uint8_t buf[4096];
      const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
      if (r > 0) out.insert(out.end(), buf, buf + r);
      return out.size() >= n || r == 0;
    });
    return out;
  }

  // What the client socket sees next: data, EOF (0) or a reset (-ECONNRESET).
  int client_outcome(int fd) {
    int result = 1;
    run_until([&] {
      char b;
      const ssize_t r = ::recv(fd, &b, 1, MSG_DONTWAIT);
      if (r == 0) {
        result = 0;
      } else if (r < 0 && errno == ECONNRESET) {
        result = -ECONNRESET;
      } else if (r < 0) {
        return false;
      }
      return true;
    });
    return result;
  }

  void socks_accept(int proxy, bool with_auth = true) {
    if (with_auth) {
      EXPECT_EQ(read_n(proxy, 3), (Bytes{5, 1, 2}));
      ASSERT_EQ(::send(proxy, "\x05\x02", 2, 0), 2);
      EXPECT_EQ(read_n(proxy, 5), (Bytes{1, 1, 'u', 1, 'p'}));
      ASSERT_EQ(::send(proxy, "\x01\x00", 2, 0), 2);
    }
  }

  std::uint64_t refusals(Refusal r) { return app_->stats().refusals[static_cast<std::size_t>(r)]; }

  // A client from a given loopback source address (a second "member").
  UniqueFd client_from(const char* ip) {
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &sa.sin_addr);
    EXPECT_EQ(::bind(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&listen_addr_), sizeof listen_addr_),
              0);
    return c;
  }

  // Every DialProxy the app sends until it has been quiet for a while.
  std::vector<std::uint64_t> drain_dials() {
    std::vector<std::uint64_t> ids;
    for (int quiet = 0; quiet < 20;) {
      ipc::ReceivedDatagram d;
      auto r = ipc::receive_datagram(broker_.get(), kMaxLinkDatagram, d);
      if (r.ok() && *r == ipc::ReceiveOutcome::kDatagram) {
        auto m = decode_to_broker(d.bytes, d.fds.size());
        if (m.ok() && std::holds_alternative<DialProxy>(*m))
          ids.push_back(std::get<DialProxy>(*m).flow);
        quiet = 0;
        continue;
      }
      EXPECT_TRUE(app_->poll_once(1));
      ++quiet;
    }
    return ids;
  }

  FakeTimeSource clock_;
  UniqueFd broker_, child_;
  std::unique_ptr<App> app_;
  sockaddr_in listen_addr_{}, dns_addr_{}, udp_addr_{};
};

TEST_F(ExitAppTest, Socks5FlowRelaysBothWaysWithHalfClose) {
  start(ProxyKind::kSocks5);
  UniqueFd c = client();
  const auto id = expect_dial();
  UniqueFd p = give_proxy(id);
  socks_accept(p.get());
  EXPECT_EQ(read_n(p.get(), 10), (Bytes{5, 1, 0, 1, 198, 18, 7, 80, 0x1f, 0x90}));
  // The reply and the server's first bytes in one segment.
  const std::uint8_t reply[] = {5, 0, 0, 1, 198, 18, 5, 2, 0x12, 0x34, 'h', 'i'};
  ASSERT_EQ(::send(p.get(), reply, sizeof reply, 0), static_cast<ssize_t>(sizeof reply));
  EXPECT_EQ(read_n(c.get(), 2), (Bytes{'h', 'i'}));
  const std::string big(std::size_t{200} * 1024, 'x');  // more than both relay buffers
  std::size_t sent = 0;
  Bytes got;
  run_until([&] {
    if (sent < big.size()) {
      const ssize_t n = ::send(c.get(), big.data() + sent, big.size() - sent, MSG_DONTWAIT);
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    std::uint8_t buf[65536];
    const ssize_t r = ::recv(p.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) got.insert(got.end(), buf, buf + r);
    return got.size() == big.size();
  });
  EXPECT_EQ(got.size(), big.size());
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  EXPECT_EQ(read_n(p.get(), 1).size(), 0u) << "the client's FIN reaches the proxy";
  ASSERT_EQ(::send(p.get(), "bye", 3, 0), 3);
  EXPECT_EQ(read_n(c.get(), 3), (Bytes{'b', 'y', 'e'})) << "the other direction still flows";
  ::shutdown(p.get(), SHUT_WR);
  EXPECT_EQ(client_outcome(c.get()), 0) << "a clean close for a clean close";
  EXPECT_TRUE(
      run_until([&] { return app_->stats().flows_open == 0 && app_->stats().flows_total == 1; }));
  EXPECT_TRUE(app_->stats().proxy_ok);
  EXPECT_EQ(app_->stats().bytes_up, big.size());
  EXPECT_EQ(app_->stats().bytes_down, 5u);
}

TEST_F(ExitAppTest, DialFailureResetsTheClientAndIsCounted) {
  start(ProxyKind::kSocks5);
  UniqueFd c = client();
  const auto id = expect_dial();
  ASSERT_TRUE(ipc::send_datagram(broker_.get(),
                                 encode_link(ToExitproc(ProxyDialFailed{id, "connect: refused"})),
                                 {})
                  .ok());
  EXPECT_EQ(client_outcome(c.get()), -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kDialFailed), 1u);
  EXPECT_FALSE(app_->stats().proxy_ok);
  EXPECT_NE(app_->stats().last_proxy_error.find("dial_failed"), std::string::npos);
}

TEST_F(ExitAppTest, AuthRefusalAndGarbageFromTheProxyReset) {
  start(ProxyKind::kSocks5, {}, "u", "wrong");
  {
    UniqueFd c = client();
    UniqueFd p = give_proxy(expect_dial());
    read_n(p.get(), 3);
    ASSERT_EQ(::send(p.get(), "\x05\x02", 2, 0), 2);
    read_n(p.get(), 9);
    ASSERT_EQ(::send(p.get(), "\x01\x01", 2, 0), 2);
    EXPECT_EQ(client_outcome(c.get()), -ECONNRESET);
    EXPECT_EQ(refusals(Refusal::kAuthRefused), 1u);
    EXPECT_EQ(app_->stats().last_proxy_error.find("wrong"), std::string::npos)
        << "no password in status";
  }
  {
    UniqueFd c = client();
    UniqueFd p = give_proxy(expect_dial());
    read_n(p.get(), 3);
    ASSERT_EQ(::send(p.get(), "HTTP/1.1 400 Bad Request\r\n\r\n", 28, 0), 28);
    EXPECT_EQ(client_outcome(c.get()), -ECONNRESET);
    EXPECT_EQ(refusals(Refusal::kProxyHandshake), 1u);
  }
}

TEST_F(ExitAppTest, HttpConnectFlowAndProxyDeathMidStreamResets) {
  start(ProxyKind::kHttpConnect);
  UniqueFd c = client();
  UniqueFd p = give_proxy(expect_dial());
  const std::string want =
      "CONNECT 198.18.7.80:8080 HTTP/1.1\r\nHost: 198.18.7.80:8080\r\nProxy-Authorization: Basic "
      "dTpw\r\n\r\n";
  const Bytes req = read_n(p.get(), want.size());
  EXPECT_EQ(std::string(req.begin(), req.end()), want);
  const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
  ASSERT_EQ(::send(p.get(), ok.data(), ok.size(), 0), static_cast<ssize_t>(ok.size()));
  ASSERT_EQ(::send(c.get(), "GET", 3, 0), 3);
  EXPECT_EQ(read_n(p.get(), 3), (Bytes{'G', 'E', 'T'}));
  // The proxy dies with unread data: its side resets, so must the client's.
  ASSERT_EQ(::send(c.get(), "more", 4, 0), 4);
  spin();
  linger l{1, 0};
  ::setsockopt(p.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  p.reset();
  const int outcome = client_outcome(c.get());
  EXPECT_EQ(outcome, -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kProxyClosed), 1u);
  EXPECT_TRUE(run_until([&] { return app_->stats().flows_open == 0; }));
}

TEST_F(ExitAppTest, IdleAndHandshakeTimeoutsFollowTheInjectedClock) {
  ExitLimits l;
  l.idle_timeout_ms = 60'000;
  l.handshake_timeout_ms = 5'000;
  start(ProxyKind::kSocks5, l, "", "");
  UniqueFd stuck = client();  // never gets a proxy connection
  expect_dial();
  UniqueFd c = client();
  UniqueFd p = give_proxy(expect_dial());
  EXPECT_EQ(read_n(p.get(), 3), (Bytes{5, 1, 0}));
  ASSERT_EQ(::send(p.get(), "\x05\x00", 2, 0), 2);
  read_n(p.get(), 10);
  const std::uint8_t reply[] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  ASSERT_EQ(::send(p.get(), reply, sizeof reply, 0), 10);
  spin();
  clock_.advance(std::chrono::seconds(6));
  spin();
  EXPECT_EQ(client_outcome(stuck.get()), -ECONNRESET) << "the dial took too long";
  EXPECT_EQ(refusals(Refusal::kDialFailed), 1u);
  EXPECT_EQ(refusals(Refusal::kIdle), 0u) << "6 s idle is within 60 s";
  clock_.advance(std::chrono::seconds(60));
  spin();
  EXPECT_EQ(client_outcome(c.get()), -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kIdle), 1u);
}

TEST_F(ExitAppTest, TotalAndPerSourceLimitsResetAndCount) {
  ExitLimits l;
  l.max_flows = 3;
  l.max_flows_per_source = 2;
  start(ProxyKind::kSocks5, l);
  std::vector<UniqueFd> cs;
  cs.reserve(3);
  for (int i = 0; i < 3; ++i) cs.push_back(client());
  expect_dial();
  expect_dial();
  EXPECT_EQ(client_outcome(cs[2].get()), -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kLimitPerSource), 1u);
  // A second source address (127.0.0.2) still gets one more, then the total is hit.
  UniqueFd other = client_from("127.0.0.2");
  expect_dial();
  UniqueFd third = client_from("127.0.0.3");
  EXPECT_EQ(client_outcome(third.get()), -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kLimitTotal), 1u);
  EXPECT_EQ(app_->stats().flows_open, 0u) << "flows_open is refreshed on ticks and stats requests";
}

// One member opening many flows at once gets its own share of dials (a burst of
// kDialShareBurst, then kDialSharePerSecond): the rest wait, unreset, and are dialed as
// the share refills, while another member's flow is dialed at once. Before, every
// accepted flow was dialed at once and the broker's global rate limit refused the
// other member's dial.
TEST_F(ExitAppTest, EachSourceGetsItsOwnShareOfDials) {
  start(ProxyKind::kSocks5);
  constexpr std::size_t kFlood = 200;
  const auto burst = static_cast<std::size_t>(kDialShareBurst);
  std::vector<UniqueFd> flood;
  flood.reserve(kFlood);
  for (std::size_t i = 0; i < kFlood; ++i) {
    flood.push_back(client_from("127.0.0.1"));
    ASSERT_TRUE(app_->poll_once(0));  // accept as we go: the backlog is 64
  }
  ASSERT_TRUE(run_until([&] { return app_->stats().flows_total == kFlood; }));
  std::vector<std::uint64_t> first = drain_dials();
  ASSERT_EQ(first.size(), burst) << "the flooder's burst, no more, without time passing";
  EXPECT_EQ(app_->dial_waits(), kFlood - burst);
  // Accept order is connect order; flow ids count up from the first one.
  const std::uint64_t id0 = first.front();
  for (std::size_t i = 0; i < burst; ++i) EXPECT_EQ(first[i], id0 + i);

  // Another member: dialed at once, ahead of the flooder's waiting flows.
  UniqueFd other = client_from("127.0.0.2");
  EXPECT_EQ(expect_dial(), id0 + kFlood);

  // A waiting flow whose client goes away (reset, or closed without sending anything)
  // is dropped and never dialed; one that sent data and half-closed still is.
  const std::uint64_t gone = id0 + burst;
  {
    linger l{1, 0};
    ::setsockopt(flood[burst].get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    flood[burst].reset();
  }
  const std::uint64_t gone_fin = id0 + burst + 1;
  flood[burst + 1].reset();
  ASSERT_EQ(::send(flood[burst + 2].get(), "GET", 3, 0), 3);
  ASSERT_EQ(::shutdown(flood[burst + 2].get(), SHUT_WR), 0);
  spin(20);

  // The share refills on the clock: 32 a second, oldest first, nobody reset.
  clock_.advance(std::chrono::seconds(1));
  std::vector<std::uint64_t> later = drain_dials();
  EXPECT_EQ(later.size(), static_cast<std::size_t>(kDialSharePerSecond));
  for (std::size_t i = 0; i < later.size(); ++i) EXPECT_EQ(later[i], gone_fin + 1 + i);
  for (int step = 0; step < 10; ++step) {
    clock_.advance(std::chrono::milliseconds(500));
    for (auto id : drain_dials()) later.push_back(id);
  }
  ASSERT_EQ(later.size(), kFlood - burst - 2) << "every waiting flow but the two closed ones";
  for (std::size_t i = 0; i < later.size(); ++i) EXPECT_EQ(later[i], gone_fin + 1 + i);
  for (std::uint64_t id : {gone, gone_fin})
    EXPECT_EQ(std::count(later.begin(), later.end(), id), 0) << "flow " << id << " was dialed";
  EXPECT_EQ(refusals(Refusal::kDialFailed), 0u);
  EXPECT_EQ(refusals(Refusal::kLimitPerSource), 0u);
  EXPECT_EQ(refusals(Refusal::kLimitTotal), 0u);
}

// A flow still waiting for its member's dial share when its handshake deadline passes
// is reset (counted as a per-source limit, the proxy not blamed) and never dialed.
TEST_F(ExitAppTest, AFlowWaitingForItsDialSharePastItsDeadlineIsResetNotDialed) {
  ExitLimits l;
  l.handshake_timeout_ms = 1'000;
  start(ProxyKind::kSocks5, l);
  const auto burst = static_cast<std::size_t>(kDialShareBurst);
  std::vector<UniqueFd> cs;
  for (std::size_t i = 0; i < burst + 2; ++i) {
    cs.push_back(client());
    ASSERT_TRUE(app_->poll_once(0));
  }
  ASSERT_TRUE(run_until([&] { return app_->stats().flows_total == burst + 2; }));
  EXPECT_EQ(drain_dials().size(), burst);
  clock_.advance(std::chrono::milliseconds(1'500));
  EXPECT_EQ(client_outcome(cs.back().get()), -ECONNRESET);
  EXPECT_TRUE(drain_dials().empty()) << "a timed-out waiting flow is never dialed";
  EXPECT_EQ(refusals(Refusal::kLimitPerSource), 2u);
  EXPECT_EQ(refusals(Refusal::kDialFailed), burst) << "the dialed ones got no proxy in time";
}

// The broker may ask for more flows than the fd limit can hold: exitproc clamps, so
// the limit answers (RST, counted) before accept4 could fail with EMFILE.
TEST_F(ExitAppTest, FlowLimitIsClampedToTheFdBudget) {
  start(ProxyKind::kSocks5, {}, "u", "p", 32 + 40);  // 40 usable: 10 DNS, 15 flows
  std::vector<UniqueFd> cs;
  for (int i = 0; i < 15; ++i) {
    cs.push_back(client());
    expect_dial();
  }
  UniqueFd extra = client();
  EXPECT_EQ(client_outcome(extra.get()), -ECONNRESET);
  EXPECT_EQ(refusals(Refusal::kLimitTotal), 1u);
}

TEST_F(ExitAppTest, DnsQueryGoesOverTcpThroughTheProxyAndFailuresAnswerServfail) {
  start(ProxyKind::kSocks5, {}, "", "");
  UniqueFd u(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  Bytes q = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  auto ask = [&] {
    ASSERT_EQ(::sendto(u.get(), q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&dns_addr_),
                       sizeof dns_addr_),
              static_cast<ssize_t>(q.size()));
  };
  auto answer = [&] {
    Bytes a;
    run_until([&] {
      std::uint8_t buf[1500];
      const ssize_t r = ::recv(u.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) a.assign(buf, buf + r);
      return r > 0;
    });
    return a;
  };
  ask();
  UniqueFd p = give_proxy(expect_dial());
  EXPECT_EQ(read_n(p.get(), 3), (Bytes{5, 1, 0}));
  ASSERT_EQ(::send(p.get(), "\x05\x00", 2, 0), 2);
  EXPECT_EQ(read_n(p.get(), 10), (Bytes{5, 1, 0, 1, 198, 18, 9, 53, 0, 53}))
      << "CONNECT to the resolver";
  const std::uint8_t reply[] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  ASSERT_EQ(::send(p.get(), reply, sizeof reply, 0), 10);
  Bytes framed = read_n(p.get(), 2 + q.size());
  ASSERT_EQ(framed.size(), 2 + q.size());
  EXPECT_EQ(load_be16(framed.data()), q.size());
  Bytes ans = q;
  ans[2] = 0x81;
  ans[3] = 0x80;
  Bytes tcp_ans = {0, static_cast<std::uint8_t>(ans.size())};
  tcp_ans.insert(tcp_ans.end(), ans.begin(), ans.end());
  ASSERT_EQ(::send(p.get(), tcp_ans.data(), tcp_ans.size(), 0),
            static_cast<ssize_t>(tcp_ans.size()));
  EXPECT_EQ(answer(), ans);
  EXPECT_EQ(app_->stats().dns_ok, 1u);
  // Dial failure: SERVFAIL, same ID.
  ask();
  const auto id = expect_dial();
  ASSERT_TRUE(
      ipc::send_datagram(broker_.get(), encode_link(ToExitproc(ProxyDialFailed{id, "x"})), {})
          .ok());
  Bytes sf = answer();
  ASSERT_GE(sf.size(), 12u);
  EXPECT_EQ(sf[0], 0xab);
  EXPECT_EQ(sf[3] & 0x0f, 2);
  // No answer in time: SERVFAIL after the DNS timeout.
  ask();
  expect_dial();
  clock_.advance(std::chrono::seconds(6));
  sf = answer();
  ASSERT_GE(sf.size(), 12u);
  EXPECT_EQ(sf[3] & 0x0f, 2);
  EXPECT_EQ(app_->stats().dns_failed, 2u);
  // Not a query: dropped, counted, no dial.
  Bytes bad = q;
  bad[2] |= 0x80;
  ::sendto(u.get(), bad.data(), bad.size(), 0, reinterpret_cast<sockaddr*>(&dns_addr_),
           sizeof dns_addr_);
  spin();
  EXPECT_EQ(app_->stats().dns_invalid, 1u);
  // Other UDP: counted and dropped.
  ::sendto(u.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&udp_addr_), sizeof udp_addr_);
  EXPECT_TRUE(run_until([&] { return app_->stats().udp_dropped == 1; }));
}

TEST_F(ExitAppTest, StatsRequestIsAnsweredAndGarbageOnTheLinkEndsTheProcess) {
  start(ProxyKind::kSocks5);
  ASSERT_TRUE(ipc::send_datagram(broker_.get(), encode_link(ToExitproc(StatsRequest{})), {}).ok());
  auto m = from_app();
  ASSERT_TRUE(m && std::holds_alternative<ExitStats>(*m));
  const std::uint8_t junk[] = {'T', 'W', 'E', 'X', 0, 1, 0, 4, 0, 0, 0, 1, 0};
  ASSERT_TRUE(ipc::send_datagram(broker_.get(), junk, {}).ok());
  bool ended = false;
  for (int i = 0; i < 100 && !ended; ++i) ended = !app_->poll_once(1);
  EXPECT_TRUE(ended);
  EXPECT_EQ(app_->exit_code(), 1);
}

}  // namespace
}  // namespace tw::exitproc
