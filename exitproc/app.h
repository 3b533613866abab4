// The exitproc event loop: one epoll loop over the broker link, the TCP listener,
// the DNS and other-UDP sockets (all created by the broker in the exit namespace),
// and the flows. For each accepted TCP connection: the original destination
// (SO_ORIGINAL_DST, the nft redirect's conntrack entry), DialProxy to the broker,
// the proxy handshake on the fd it passes back, then a relay both ways through two
// fixed buffers from a bounded pool, with half-close and an idle timeout. Every
// failure resets the client (SO_LINGER 0) and is counted by reason; nothing here can
// dial (the sandbox has no socket() or connect()). UDP to port 53 is forwarded as DNS
// over TCP through a proxy flow to the configured resolver (the UDP side and the
// framing: exitproc/dns_forward.h); other UDP is counted and dropped. Timeouts read an
// injected clock.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "common/throttle.h"
#include "exitproc/dns_forward.h"
#include "exitproc/link.h"
#include "exitproc/proxy_client.h"

namespace tw::exitproc {

constexpr std::size_t kRelayBufferBytes = 64 * 1024;

// Each source (tailnet member address) gets its own share of proxy dials, a token
// bucket well below the broker's global one (200/s, burst 400), so that one member
// opening thousands of connections cannot use up the broker's bucket and have every
// other member's dials refused. A flow whose source has no token is not reset: it
// waits in its source's FIFO (at most max_flows_per_source long), still bounded by its
// handshake deadline, and is dialed when the bucket refills.
constexpr double kDialShareBurst = 64;
constexpr double kDialSharePerSecond = 32;

struct AppOptions {
  // Tests only (never set from the command line or the link): the destination used
  // when a connection has no SO_ORIGINAL_DST, for driving the loop without nft.
  std::optional<IpPort> test_fixed_destination;
  // How many fds the process may hold (RLIMIT_NOFILE, read before the sandbox): the
  // flow limits are clamped so that every flow's two sockets and every DNS query's
  // one fit, whatever the broker asks for.
  std::size_t fd_budget = 1024;
};

class App {
 public:
  // Creates the epoll instance: call before the sandbox is entered.
  App(int link_fd, const TimeSource& clock, AppOptions opts = {});
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Runs until the broker link closes (0) or breaks (1).
  int run();
  // One loop iteration waiting at most timeout_ms; returns false when run() would end.
  bool poll_once(int timeout_ms);
  int exit_code() const { return exit_code_; }

  const ExitStats& stats() const { return stats_; }
  std::size_t buffers_allocated() const { return pool_allocated_; }
  // Flows that had to wait for their source's dial share (not on the stats link).
  std::uint64_t dial_waits() const { return dial_waits_; }

 private:
  struct Buffer {
    std::unique_ptr<std::uint8_t[]> data;
    std::size_t start = 0, end = 0;
    std::size_t size() const { return end - start; }
    std::size_t space() const { return kRelayBufferBytes - end; }
    void compact();
  };
  enum class Phase { kDialing, kHandshake, kRelay, kDnsQuery, kDnsAnswer };
  struct Flow {
    std::uint64_t id = 0;
    bool dns = false;
    int client = -1;  // TCP flows
    int proxy = -1;
    std::uint32_t source = 0;  // client IPv4 (host order), for per-source limits
    DnsQuery dns_query;        // DNS flows
    Phase phase = Phase::kDialing;
    bool waiting = false;      // kDialing, queued for its source's dial share: not yet dialed
    bool waiting_hup = false;  // the client half-closed after sending data while waiting
    ConnectTarget target;
    std::unique_ptr<ProxyHandshake> hs;
    Bytes pending;  // handshake bytes or the DNS request still to write
    std::size_t pending_off = 0;
    Buffer up, down;  // client->proxy, proxy->client (TCP relay); down holds a DNS answer
    bool client_eof = false, proxy_eof = false, up_shut = false, down_shut = false;
    TimePoint deadline{};  // dial + handshake, DNS
    TimePoint last_activity{};
    std::uint32_t client_mask = 0, proxy_mask = 0;  // epoll interest registered
  };

  void on_link();
  void on_link_writable();
  void send_link(const ToBroker& m);
  void handle(ExitSetup&& s, std::vector<int> fds);
  void on_accept();
  bool start_dns(DnsQuery&& q);
  void on_udp_sink();
  void on_proxy_conn(std::uint64_t id, int fd);
  void on_dial_failed(std::uint64_t id, const std::string& reason);
  void on_flow_event(std::uint64_t id, bool proxy_side, std::uint32_t events);
  void pump(Flow& f);
  void pump_handshake(Flow& f);
  void pump_relay(Flow& f);
  void pump_dns(Flow& f);
  void update_interest(Flow& f);
  void refuse(Flow& f, Refusal why, const std::string& detail);
  void finish_dns(Flow& f, bool ok);
  void close_flow(Flow& f, bool reset_client, bool reset_proxy);
  void tick();
  bool take_buffers(Flow& f);
  void give_buffers(Flow& f);
  void note_proxy_error(Refusal why, const std::string& detail);
  void release_waiting(TimePoint now);

  int link_;
  const TimeSource& clock_;
  AppOptions opts_;
  int epoll_ = -1;
  bool setup_done_ = false;
  ExitSetup setup_;
  int listener_ = -1, udp_ = -1;
  std::unordered_map<std::uint64_t, Flow> flows_;
  struct Source {
    std::uint32_t flows = 0;  // open TCP flows
    TokenBucket dials{kDialSharePerSecond, kDialShareBurst};  // this member's share
    std::deque<std::uint64_t> waiting;  // flow ids, oldest first; <= max_flows_per_source
  };
  // Kept while a source has flows or its bucket is not full again (else a member could
  // close everything and start over with a full burst); dropped on a tick after that.
  std::unordered_map<std::uint32_t, Source> per_source_;
  std::uint64_t dial_waits_ = 0;
  std::size_t tcp_flows_ = 0;
  std::uint64_t next_id_ = 1;
  std::vector<std::unique_ptr<std::uint8_t[]>> pool_;
  std::size_t pool_allocated_ = 0;
  std::deque<Bytes> link_out_;
  bool link_out_armed_ = false;
  bool listener_paused_ = false;  // out of fds: accepting resumes when a flow closes
  TimePoint last_tick_{};
  ExitStats stats_;
  DnsForwarder dns_{stats_};  // after stats_, which it counts into
  bool running_ = true;
  int exit_code_ = 0;
  std::vector<std::uint64_t> to_pump_;
};

}  // namespace tw::exitproc
