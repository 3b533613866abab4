// Interop with the real wireguard-go (the oracle): in a fresh network namespace a
// wireguard-go interface is configured with `wg set` to talk to a UDP socket this
// test owns; our engine completes a handshake with it and ICMP echoes go through
// the tunnel both ways, answered by the kernel behind wireguard-go's TUN.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "dataproc/wireguard/device.h"

namespace tw::wg {
namespace {

bool on_path(const std::string& prog) {
  return std::system(("command -v " + prog + " >/dev/null 2>&1").c_str()) == 0;
}

int run(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string base64(const KeyBytes& k) {
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(out, sizeof out, k.data(), k.size(), sodium_base64_VARIANT_ORIGINAL);
  return out;
}

std::uint16_t inet_checksum(const std::uint8_t* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += load_be16(p + i);
  if (n % 2) sum += std::uint32_t{p[n - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// An IPv4 ICMP echo (type 8 request, 0 reply) with valid checksums.
Bytes icmp_echo(const IpAddr& src, const IpAddr& dst, std::uint8_t type, std::uint16_t id,
                std::uint16_t seq, ByteView payload) {
  Bytes p(20 + 8 + payload.size(), 0);
  p[0] = 0x45;
  store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
  p[8] = 64;
  p[9] = 1;
  for (int i = 0; i < 4; ++i) {
    p[12 + i] = src.raw()[i];
    p[16 + i] = dst.raw()[i];
  }
  store_be16(p.data() + 10, inet_checksum(p.data(), 20));
  std::uint8_t* icmp = p.data() + 20;
  icmp[0] = type;
  store_be16(icmp + 4, id);
  store_be16(icmp + 6, seq);
  std::copy(payload.begin(), payload.end(), icmp + 8);
  store_be16(icmp + 2, inet_checksum(icmp, 8 + payload.size()));
  return p;
}

// Everything the test creates, torn down in reverse on any exit path.
class Namespace {
 public:
  Namespace() {
    const int n = static_cast<int>(getpid() % 100000);
    name_ = "twwg-interop-" + std::to_string(n);
    ifname_ = "twwg" + std::to_string(n);
    key_file_ = "/tmp/" + name_ + ".key";
    run("ip netns del " + name_ + " 2>/dev/null");
    ok_ = run("ip netns add " + name_) == 0 &&
          run("ip netns exec " + name_ + " ip link set lo up") == 0;
  }
  ~Namespace() {
    if (wg_pid_ > 0) {
      kill(wg_pid_, SIGTERM);
      int st = 0;
      waitpid(wg_pid_, &st, 0);
    }
    if (sock_ >= 0) close(sock_);
    std::remove(key_file_.c_str());
    std::remove(("/var/run/wireguard/" + ifname_ + ".sock").c_str());
    run("ip netns del " + name_ + " 2>/dev/null");
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  const std::string& ifname() const { return ifname_; }
  const std::string& key_file() const { return key_file_; }
  std::string exec(const std::string& cmd) const { return "ip netns exec " + name_ + " " + cmd; }

  void stop_wireguard_go() {
    if (wg_pid_ <= 0) return;
    kill(wg_pid_, SIGTERM);
    int st = 0;
    waitpid(wg_pid_, &st, 0);
    wg_pid_ = -1;
    std::remove(("/var/run/wireguard/" + ifname_ + ".sock").c_str());
  }

  bool start_wireguard_go() {
    wg_pid_ = fork();
    if (wg_pid_ == 0) {
      setenv("WG_PROCESS_FOREGROUND", "1", 1);
      if (getenv("TW_WG_DEBUG")) setenv("LOG_LEVEL", "verbose", 1);
      execlp("ip", "ip", "netns", "exec", name_.c_str(), "wireguard-go", "-f", ifname_.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::string sock = "/var/run/wireguard/" + ifname_ + ".sock";
    for (int i = 0; i < 100; ++i) {
      struct stat st;
      if (stat(sock.c_str(), &st) == 0) return true;
      usleep(50'000);
    }
    return false;
  }

  // A UDP socket bound to 127.0.0.1 inside the namespace (setns on this thread only).
  int open_socket_inside(std::uint16_t* port) {
    const int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) return -1;
    sock_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (sock_ < 0 || bind(sock_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        getsockname(sock_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      sock_ = -1;
    }
    *port = ntohs(sa.sin_port);
    if (setns(self, CLONE_NEWNET) != 0) std::abort();  // never continue in the wrong netns
    close(self);
    close(target);
    return sock_;
  }

 private:
  std::string name_, ifname_, key_file_;
  bool ok_ = false;
  pid_t wg_pid_ = -1;
  int sock_ = -1;
};

constexpr std::uint16_t kWgPort = 51820;
const IpAddr kOurIp = IpAddr::v4(100, 64, 0, 1);
const IpAddr kTheirIp = IpAddr::v4(100, 64, 0, 2);

class WireGuardGoInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
    if (!on_path("wireguard-go") || !on_path("wg") || !on_path("ip"))
      GTEST_SKIP() << "wireguard-go, wg or ip is not installed";
    crypto_init();
  }

  void send_all(int sock, EngineOutput& out) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(kWgPort);
    for (std::size_t i = 0; i < out.to_network.size(); ++i) {
      auto d = out.to_network.bytes(i);
      sent.emplace_back(d.begin(), d.end());
      ASSERT_EQ(sendto(sock, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
                static_cast<ssize_t>(d.size()));
    }
    out.to_network.clear();
  }

  // Receives for up to `ms`, feeding the engine; returns TUN packets produced.
  std::vector<Bytes> receive(WireGuardDevice& dev, int sock, EngineOutput& out, int ms) {
    std::vector<Bytes> tun;
    pollfd pfd{sock, POLLIN, 0};
    if (poll(&pfd, 1, ms) > 0) {
      std::uint8_t buf[65536];
      const ssize_t n = recv(sock, buf, sizeof buf, 0);
      if (n > 0) {
        received.emplace_back(buf, buf + n);
        dev.on_datagram(1, ByteView(buf, static_cast<std::size_t>(n)), engine_now(), out);
      }
    }
    dev.on_timer(engine_now(), out);
    for (std::size_t i = 0; i < out.to_tun.size(); ++i) {
      auto p = out.to_tun.bytes(i);
      tun.emplace_back(p.begin(), p.end());
    }
    out.to_tun.clear();
    send_all(sock, out);
    return tun;
  }

  // A fresh namespace with wireguard-go peered with our engine.
  void bring_up(DeviceOptions options = {}) {
    ns_ = std::make_unique<Namespace>();
    Namespace& ns = *ns_;
    ASSERT_TRUE(ns.ok()) << "could not create network namespace " << ns.name();
    ASSERT_TRUE(ns.start_wireguard_go()) << "wireguard-go did not come up";
    std::uint16_t our_port = 0;
    sock_ = ns.open_socket_inside(&our_port);
    ASSERT_GE(sock_, 0);
    our_port_ = our_port;
    ASSERT_NO_FATAL_FAILURE(configure_wireguard_go());
    // Skewed time applies to the wall clock too, as if the time had really passed
    // (TAI64N timestamps have ~16.8 ms granularity: a rekey "121 s later" must carry
    // a later timestamp or wireguard-go rightly calls it a replay).
    options.wall_clock = [this] {
      return std::chrono::system_clock::now() +
             std::chrono::duration_cast<std::chrono::system_clock::duration>(skew_);
    };
    dev_ = std::make_unique<WireGuardDevice>(std::move(options));
    dev_->set_private_key(ours_);
    dev_->set_peers({PeerConfig{1, theirs_.public_key(), {*IpPrefix::parse("100.64.0.2/32")}, {}}});
  }

  // Keys, address and route of the wireguard-go interface (again after a restart).
  void configure_wireguard_go() {
    Namespace& ns = *ns_;
    const NodePrivate& ours = ours_;
    const NodePrivate& theirs = theirs_;
    const std::uint16_t our_port = our_port_;
    {
      std::ofstream f(ns.key_file());
      f << base64(theirs.bytes()) << "\n";
    }
    chmod(ns.key_file().c_str(), 0600);
    ASSERT_EQ(run(ns.exec("wg set " + ns.ifname() + " private-key " + ns.key_file() +
                          " listen-port " + std::to_string(kWgPort) + " peer " +
                          base64(ours.public_key().bytes()) + " allowed-ips 100.64.0.1/32" +
                          " endpoint 127.0.0.1:" + std::to_string(our_port))),
              0);
    ASSERT_EQ(run(ns.exec("ip addr add 100.64.0.2/32 dev " + ns.ifname())), 0);
    ASSERT_EQ(run(ns.exec("ip link set " + ns.ifname() + " up")), 0);
    ASSERT_EQ(run(ns.exec("ip route add 100.64.0.1/32 dev " + ns.ifname())), 0);
    // Bringing the link up rebinds wireguard-go's UDP socket asynchronously; wait for
    // it so the first initiation is not lost (and retried only after 5 s).
    bool listening = false;
    for (int i = 0; i < 100 && !listening; ++i) {
      listening = run(ns.exec("ss -Hlun 'sport = :" + std::to_string(kWgPort) +
                              "' | grep -q " + std::to_string(kWgPort))) == 0;
      if (!listening) usleep(50'000);
    }
    ASSERT_TRUE(listening) << "wireguard-go is not listening on " << kWgPort;
  }

  // Runs `ping` from the wireguard-go side to us, answering its echo requests
  // through the engine; returns how many requests we answered (ping must succeed).
  // The 6 s reply wait covers one lost initiation and its retry after REKEY_TIMEOUT
  // (5 s), which a loaded CI machine can cause on the first exchange.
  int answer_pings(int count, int wait_seconds = 6) {
    WireGuardDevice& dev = *dev_;
    EngineOutput out;
    const pid_t ping = fork();
    if (ping == 0) {
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, STDOUT_FILENO);  // keep ping's chatter out of the log
      const std::string n = std::to_string(count), w = std::to_string(wait_seconds);
      execlp("ip", "ip", "netns", "exec", ns_->name().c_str(), "ping", "-q", "-c", n.c_str(),
             "-i", "0.2", "-W", w.c_str(), "100.64.0.1", static_cast<char*>(nullptr));
      _exit(127);
    }
    int answered = 0;
    int status = -1;
    const auto deadline = Clock::now() + std::chrono::seconds(wait_seconds + 7);
    while (Clock::now() < deadline) {
      for (const Bytes& p : receive(dev, sock_, out, 100)) {
        if (p.size() >= 28 && p[9] == 1 && p[20] == 8) {
          Bytes reply = icmp_echo(kOurIp, kTheirIp, 0, load_be16(p.data() + 24),
                                  load_be16(p.data() + 26), ByteView(p).subspan(28));
          dev.on_tun_packet(reply, engine_now(), out);
          send_all(sock_, out);
          ++answered;
        }
      }
      if (waitpid(ping, &status, WNOHANG) == ping) break;
    }
    if (!WIFEXITED(status)) {
      kill(ping, SIGKILL);
      waitpid(ping, &status, 0);
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "ping from the wireguard-go side failed";
    return answered;
  }

  // Sends an echo request from us and waits for the reply from the kernel behind
  // wireguard-go.
  bool echo_through(std::uint16_t seq, Duration wait = std::chrono::seconds(10)) {
    EngineOutput out;
    const std::string payload = "tailwarden interop";
    const ByteView pl(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
    dev_->on_tun_packet(icmp_echo(kOurIp, kTheirIp, 8, 0x7777, seq, pl), engine_now(), out);
    send_all(sock_, out);
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      for (const Bytes& p : receive(*dev_, sock_, out, 200)) {
        if (p.size() >= 28 && p[9] == 1 && p[20] == 0 && load_be16(p.data() + 24) == 0x7777 &&
            load_be16(p.data() + 26) == seq &&
            Bytes(p.begin() + 12, p.begin() + 16) == Bytes{100, 64, 0, 2}) {
          EXPECT_EQ(Bytes(p.begin() + 28, p.end()), Bytes(pl.begin(), pl.end()));
          return true;
        }
      }
    }
    return false;
  }

  // The engine's clock: real time plus a skew tests use to age sessions instantly.
  TimePoint engine_now() const { return Clock::now() + skew_; }

  Duration skew_{};
  NodePrivate ours_ = NodePrivate::generate();
  NodePrivate theirs_ = NodePrivate::generate();
  std::uint16_t our_port_ = 0;
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<WireGuardDevice> dev_;
  int sock_ = -1;
  std::vector<Bytes> sent, received;
};

TEST_F(WireGuardGoInterop, HandshakeAndIcmpEchoBothWaysThroughWireguardGo) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  WireGuardDevice& dev = *dev_;
  EngineOutput out;

  // 1. Our echo request: handshake, then the kernel behind wireguard-go answers.
  const bool got_reply = echo_through(1);
  ASSERT_TRUE(got_reply) << "no ICMP echo reply through wireguard-go; sent " << sent.size()
                         << " datagrams, received " << received.size()
                         << ", handshake responses accepted "
                         << dev.counters().handshake_responses_received;
  EXPECT_EQ(dev.counters().handshake_responses_received, 1u);
  EXPECT_EQ(dev.counters().decryption_failures, 0u);
  EXPECT_TRUE(dev.peer_counters(1)->last_handshake.has_value());

  // 2. The wireguard-go side pings us over the same session.
  EXPECT_GE(answer_pings(2), 2);

  // 3. A captured transport packet from wireguard-go, replayed, is rejected.
  Bytes captured;
  for (const Bytes& d : received)
    if (d.size() > kTransportMinSize && load_le32(d.data()) == 4) captured = d;
  ASSERT_FALSE(captured.empty());
  const auto replays_before = dev.counters().replays;
  dev.on_datagram(1, captured, engine_now(), out);
  EXPECT_EQ(dev.counters().replays, replays_before + 1);
  EXPECT_TRUE(out.to_tun.empty());
}

TEST_F(WireGuardGoInterop, RekeyAfterRekeyAfterTimeKeepsTrafficFlowing) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  ASSERT_TRUE(echo_through(1));
  const DeviceCounters before = dev_->counters();
  const auto completed_before = dev_->peer_counters(1)->handshakes_completed;
  // Age our session past REKEY_AFTER_TIME: the next packet goes out on the old
  // session and triggers a new handshake, which wireguard-go must accept. Real time
  // must pass too: wireguard-go refuses a second initiation within 20 ms (flood).
  usleep(100'000);
  skew_ = kRekeyAfterTime + std::chrono::seconds(1);
  ASSERT_TRUE(echo_through(2));
  EXPECT_TRUE(echo_through(3));
  // The echoes may come back on the old session before the handshake response
  // arrives (the response races them under load): keep traffic going until it has.
  for (std::uint16_t seq = 10; seq < 30 && dev_->counters().handshake_responses_received ==
                                               before.handshake_responses_received;
       ++seq) {
    EXPECT_TRUE(echo_through(seq));
  }
  const DeviceCounters& c = dev_->counters();
  EXPECT_EQ(c.handshake_initiations_sent, before.handshake_initiations_sent + 1);
  EXPECT_EQ(c.handshake_responses_received, before.handshake_responses_received + 1)
      << "unknown index " << c.unknown_index << ", failed " << c.handshakes_failed
      << ", bad mac1 " << c.invalid_mac1 << ", invalid " << c.invalid_messages;
  EXPECT_EQ(dev_->peer_counters(1)->handshakes_completed, completed_before + 1);
  // Past REJECT_AFTER_TIME of the first session: only the new one can carry data.
  usleep(100'000);
  skew_ = kRejectAfterTime + std::chrono::seconds(30);
  EXPECT_TRUE(echo_through(4));
  EXPECT_EQ(dev_->counters().decryption_failures, 0u);
}

TEST_F(WireGuardGoInterop, WireguardGoRestartIsRecoveredByANewHandshake) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  ASSERT_TRUE(echo_through(1));
  ns_->stop_wireguard_go();
  ASSERT_TRUE(ns_->start_wireguard_go());
  ASSERT_NO_FATAL_FAILURE(configure_wireguard_go());
  // The new instance does not know our session: data on it goes unanswered...
  EXPECT_FALSE(echo_through(2, std::chrono::milliseconds(500)));
  const auto initiations_before = dev_->counters().handshake_initiations_sent;
  // ...until KEEPALIVE + REKEY_TIMEOUT (+ jitter) later our timer starts a handshake.
  skew_ = kKeepaliveTimeout + kRekeyTimeout + kRekeyTimeoutJitterMax + std::chrono::seconds(1);
  EngineOutput out;
  for (int i = 0; i < 10 && dev_->counters().handshake_responses_received < 2; ++i)
    (void)receive(*dev_, sock_, out, 100);
  EXPECT_EQ(dev_->counters().handshake_initiations_sent, initiations_before + 1);
  EXPECT_TRUE(echo_through(3));
}

TEST_F(WireGuardGoInterop, WireguardGoInitiatesAndOurResponseIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(bring_up());
  // No packet from us first: wireguard-go initiates, we respond and it confirms.
  EXPECT_GE(answer_pings(3), 3);
  EXPECT_EQ(dev_->counters().handshake_initiations_received, 1u);
  EXPECT_EQ(dev_->counters().handshake_responses_sent, 1u);
  EXPECT_EQ(dev_->counters().handshake_initiations_sent, 0u);
  EXPECT_EQ(dev_->counters().allowedips_drops + dev_->counters().decryption_failures, 0u);
}

TEST_F(WireGuardGoInterop, UnderLoadOurCookieReplyMakesWireguardGoRetryWithMac2) {
  DeviceOptions loaded;
  loaded.under_load_handshakes_per_second = 0;  // every handshake needs a valid mac2
  ASSERT_NO_FATAL_FAILURE(bring_up(std::move(loaded)));
  // wireguard-go's first initiation gets a cookie reply; its retry after
  // REKEY_TIMEOUT carries mac2 made from our cookie and is accepted.
  EXPECT_GE(answer_pings(1, 9), 1);
  EXPECT_GE(dev_->counters().cookie_replies_sent, 1u);
  EXPECT_EQ(dev_->counters().handshake_initiations_received, 1u);
}

}  // namespace
}  // namespace tw::wg
