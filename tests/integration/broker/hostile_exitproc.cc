// Test-only stand-in for tailwarden-exitproc: a compromised exitproc, spawned by the
// real broker (TW_LIBEXEC_DIR points at a directory where tailwarden-exitproc is this
// binary). It takes its ExitSetup, then does what the file "hostile_exit.mode" next to
// it says (re-read every 100 ms; each mode acts once per process):
//   flood     2000 DialProxy requests as fast as the link takes them; every ProxyConn
//             fd's peer address is recorded, each fd closed;
//   garbage   a datagram of random bytes;
//   fds       a DialProxy with an fd attached;
//   oversize  a datagram larger than any link message;
//   idle      nothing (the default).
// Every StatsRequest is answered with lies (absurd counters, control bytes and invalid
// UTF-8 in the error text). It writes "hostile_exit.report" next to it: setup fds,
// ProxyConn count, ProxyDialFailed counts by kind, and the distinct peers of the fds.
// It is not sandboxed: it is the attacker, not the thing under test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "common/child_fds.h"
#include "exitproc/link.h"
#include "ipc/control_socket.h"

namespace {

std::string g_dir;

std::string read_mode() {
  std::ifstream in(g_dir + "/hostile_exit.mode");
  std::string m;
  std::getline(in, m);
  return m.empty() ? "idle" : m;
}

struct Report {
  std::size_t setup_fds = 0;
  int conns = 0;
  int failed_rate = 0;
  int failed_other = 0;
  std::set<std::string> peers;
  std::string last_failure;
  void write() const {
    std::ofstream out(g_dir + "/hostile_exit.report.tmp");
    out << "setup_fds " << setup_fds << "\nconns " << conns << "\nfailed_rate " << failed_rate
        << "\nfailed_other " << failed_other << "\n";
    for (const auto& p : peers) out << "peer " << p << "\n";
    out << "last_failure " << last_failure << "\n";
    out.close();
    (void)::rename((g_dir + "/hostile_exit.report.tmp").c_str(),
                   (g_dir + "/hostile_exit.report").c_str());
  }
};

std::string peer_of(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof sin;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0 || sin.sin_family != AF_INET)
    return "?";
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(sin.sin_port));
}

// Reads what the broker sent meanwhile (set in main): while our sends wait for room,
// the broker's replies must keep draining or both sides wait on each other.
std::function<bool()> g_drain;

bool send_raw(const tw::Bytes& d, std::span<const int> fds = {}) {
  for (int i = 0; i < 1000; ++i) {
    auto r = tw::ipc::send_datagram(tw::child_fd::kBrokerControl, d, fds);
    if (!r) return false;
    if (*r == tw::ipc::SendOutcome::kSent) return true;
    if (g_drain && !g_drain()) return false;
    pollfd p{tw::child_fd::kBrokerControl, POLLOUT | POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return false;
}

tw::exitproc::ExitStats lies() {
  tw::exitproc::ExitStats s;
  s.flows_open = ~0ULL;
  s.flows_total = 3;
  s.bytes_up = 1ULL << 63;
  s.bytes_down = 7;
  s.refusals.fill(~0ULL);
  s.proxy_ok = true;
  // No control bytes (the codec refuses those: a violation, tested apart), but bytes
  // that are not UTF-8 and an escape-looking text.
  s.last_proxy_error = std::string("[31mred \xff\xfe not utf-8 ") + std::string(400, 'A');
  return s;
}

}  // namespace

int main(int, char** argv) {  // NOLINT(bugprone-exception-escape)
  std::string self = argv[0];
  g_dir = self.substr(0, self.rfind('/'));
  const int link = tw::child_fd::kBrokerControl;
  Report report;
  std::set<std::string> done_modes;
  bool setup = false;
  // Reads everything waiting; false when the broker closed the link.
  auto drain = [&]() -> bool {
    for (;;) {
      tw::ipc::ReceivedDatagram d;
      auto r = tw::ipc::receive_datagram(link, tw::exitproc::kMaxLinkDatagram, d);
      if (!r || *r == tw::ipc::ReceiveOutcome::kPeerClosed) return false;
      if (*r == tw::ipc::ReceiveOutcome::kWouldBlock) return true;
      auto m = tw::exitproc::decode_to_exitproc(d.bytes, d.fds.size());
      if (!m) continue;
      if (std::holds_alternative<tw::exitproc::ExitSetup>(*m)) {
        setup = true;
        report.setup_fds = d.fds.size();
      } else if (std::holds_alternative<tw::exitproc::ProxyConn>(*m)) {
        ++report.conns;
        if (!d.fds.empty()) report.peers.insert(peer_of(d.fds[0].get()));
      } else if (auto* f = std::get_if<tw::exitproc::ProxyDialFailed>(&*m)) {
        (f->reason.find("rate") != std::string::npos ||
         f->reason.find("in flight") != std::string::npos)
            ? ++report.failed_rate
            : ++report.failed_other;
        report.last_failure = f->reason;
      } else if (std::holds_alternative<tw::exitproc::StatsRequest>(*m)) {
        (void)send_raw(tw::exitproc::encode_link(tw::exitproc::ToBroker{lies()}));
      }
    }
  };
  g_drain = drain;
  for (;;) {
    pollfd p{link, POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!drain()) {
      report.write();
      return 0;  // the broker closed the link: what a real exitproc does too
    }
    report.write();
    if (!setup) continue;
    const std::string mode = read_mode();
    if (done_modes.count(mode)) continue;
    done_modes.insert(mode);
    if (mode == "flood") {
      for (std::uint64_t flow = 1; flow <= 2000; ++flow) {
        if (!send_raw(
                tw::exitproc::encode_link(tw::exitproc::ToBroker{tw::exitproc::DialProxy{flow}})))
          break;
        if (!drain()) {
          report.write();
          return 0;
        }
      }
    } else if (mode == "garbage") {
      tw::Bytes junk(100);
      for (auto& b : junk) b = static_cast<std::uint8_t>(::random());
      (void)send_raw(junk);
    } else if (mode == "fds") {
      const int fd = 0;
      (void)send_raw(tw::exitproc::encode_link(tw::exitproc::ToBroker{tw::exitproc::DialProxy{1}}),
                     std::span<const int>(&fd, 1));
    } else if (mode == "oversize") {
      tw::Bytes big(tw::exitproc::kMaxLinkDatagram + 1000, 0x41);
      (void)send_raw(big);
    }
  }
}
