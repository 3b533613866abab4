// exit_driver: the broker's side of the exit path, small enough for a test. It creates
// the exit listeners inside a given network namespace (TCP :7001, UDP :7053 for DNS,
// UDP :7002 for other UDP), spawns the real tailwarden-exitproc the way the broker
// spawns children (fd 3 only, fresh empty network namespace, dropped uid, seccomp),
// sends ExitSetup with the three fds, then answers every DialProxy by dialling the
// one configured proxy address (non-blocking connect) and passing the connected fd
// (ProxyConn) or the failure (ProxyDialFailed). Every 200 ms it asks for ExitStats
// and writes them to --stats-file as "key value" lines. It exits when exitproc does
// (with its status) or on SIGTERM/SIGINT (killing exitproc).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "broker/spawn.h"
#include "common/ipaddr.h"
#include "exitproc/exit_ns.h"
#include "exitproc/link.h"
#include "ipc/control_socket.h"

namespace {

using namespace tw;
using namespace tw::exitproc;

volatile sig_atomic_t g_stop = 0;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

std::string err_text(int e) { return std::error_code(e, std::generic_category()).message(); }
void on_signal(int) { g_stop = 1; }

int die(const std::string& what) {
  (void)std::fprintf(stderr, "exit_driver: %s: %s\n", what.c_str(), err_text(errno).c_str());
  return 1;
}

int make_socket(int type, std::uint16_t port) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return -1;
  if (type == SOCK_STREAM && ::listen(fd, kExitTcpBacklog) != 0) return -1;
  return fd;
}

struct PendingDial {
  std::uint64_t flow;
  int fd;
};

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape): a test tool
  CLI::App app{"exitproc test driver (plays the broker)"};
  std::string exitproc_bin, netns_path, proxy_text, kind = "socks5", user, pass,
                                                    dns = "198.18.9.53";
  std::string stats_file, pid_file, log_level = "info";
  std::uint32_t max_flows = kDefaultMaxFlows, per_source = kDefaultMaxFlowsPerSource;
  std::uint32_t idle_ms = kDefaultIdleTimeoutMs, handshake_ms = kDefaultHandshakeTimeoutMs;
  app.add_option("--exitproc", exitproc_bin)->required();
  app.add_option("--exit-netns", netns_path, "e.g. /run/netns/NAME")->required();
  app.add_option("--proxy", proxy_text, "IPv4:port")->required();
  app.add_option("--kind", kind)->check(CLI::IsMember({"socks5", "http"}));
  app.add_option("--user", user);
  app.add_option("--pass", pass);
  app.add_option("--dns", dns);
  app.add_option("--max-flows", max_flows);
  app.add_option("--max-per-source", per_source);
  app.add_option("--idle-ms", idle_ms);
  app.add_option("--handshake-ms", handshake_ms);
  app.add_option("--stats-file", stats_file)->required();
  app.add_option("--pid-file", pid_file);
  app.add_option("--log-level", log_level);
  CLI11_PARSE(app, argc, argv);

  const auto proxy = IpPort::parse(proxy_text);
  const auto resolver = IpAddr::parse(dns);
  if (!proxy || !proxy->ip.is_v4() || !resolver || !resolver->is_v4()) {
    (void)std::fprintf(stderr, "exit_driver: --proxy and --dns must be IPv4\n");
    return 2;
  }

  // The listeners, made inside the exit namespace (as the broker does).
  const int home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const int exit_ns = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (home < 0 || exit_ns < 0) return die("open netns");
  if (::setns(exit_ns, CLONE_NEWNET) != 0) return die("setns(exit)");
  const int lst = make_socket(SOCK_STREAM, kExitTcpPort);
  const int dns_sock = make_socket(SOCK_DGRAM, kExitDnsPort);
  const int udp_sock = make_socket(SOCK_DGRAM, kExitUdpPort);
  if (lst < 0 || dns_sock < 0 || udp_sock < 0) return die("exit listeners");
  if (::setns(home, CLONE_NEWNET) != 0) return die("setns(home)");
  ::close(exit_ns);
  ::close(home);

  auto pair = ipc::make_control_pair();
  if (!pair) {
    (void)std::fprintf(stderr, "exit_driver: %s\n", pair.error().c_str());
    return 1;
  }
  broker::ChildSpec spec;
  spec.path = exitproc_bin;
  spec.args = {"--uid", "65534", "--gid", "65534", "--sandbox", "strict", "--log-level", log_level};
  spec.fds = {{3, pair->second.get()}};
  spec.new_netns = true;
  auto pid = broker::spawn_child(spec);
  if (!pid) {
    (void)std::fprintf(stderr, "exit_driver: spawn: %s\n", pid.error().c_str());
    return 1;
  }
  pair->second.reset();
  const int link = pair->first.get();
  (void)ipc::set_nonblocking(link);
  if (!pid_file.empty()) std::ofstream(pid_file) << *pid << "\n";

  ExitSetup s;
  s.kind = kind == "socks5" ? ProxyKind::kSocks5 : ProxyKind::kHttpConnect;
  s.proxy_host = proxy_text;
  s.username = user;
  s.password = pass;
  std::copy_n(resolver->raw().begin(), 4, s.dns_resolver.begin());
  s.limits.max_flows = max_flows;
  s.limits.max_flows_per_source = per_source;
  s.limits.idle_timeout_ms = idle_ms;
  s.limits.handshake_timeout_ms = handshake_ms;
  const int setup_fds[] = {lst, dns_sock, udp_sock};
  if (auto r = ipc::send_datagram(link, encode_link(ToExitproc(s)), setup_fds);
      !r || *r != ipc::SendOutcome::kSent) {
    (void)std::fprintf(stderr, "exit_driver: sending ExitSetup failed\n");
    return 1;
  }
  ::close(lst);
  ::close(dns_sock);
  ::close(udp_sock);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  sockaddr_storage proxy_sa{};
  const socklen_t proxy_len = proxy->to_sockaddr(&proxy_sa, false);
  std::vector<PendingDial> dials;
  std::uint64_t dials_total = 0;
  auto last_stats = std::chrono::steady_clock::now();
  int child_status = -1;
  while (!g_stop) {
    std::vector<pollfd> pf;
    pf.push_back({link, POLLIN, 0});
    for (const auto& d : dials) pf.push_back({d.fd, POLLOUT, 0});
    ::poll(pf.data(), pf.size(), 50);
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      for (;;) {
        ipc::ReceivedDatagram d;
        auto r = ipc::receive_datagram(link, kMaxLinkDatagram, d);
        if (!r) {
          (void)std::fprintf(stderr, "exit_driver: link: %s\n", r.error().c_str());
          g_stop = 1;
          break;
        }
        if (*r == ipc::ReceiveOutcome::kWouldBlock) break;
        if (*r == ipc::ReceiveOutcome::kPeerClosed) {
          g_stop = 1;
          break;
        }
        auto m = decode_to_broker(d.bytes, d.fds.size());
        if (!m) {
          (void)std::fprintf(stderr, "exit_driver: link: %s\n", m.error().c_str());
          g_stop = 1;
          break;
        }
        if (auto* dp = std::get_if<DialProxy>(&*m)) {
          ++dials_total;
          const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
          if (fd < 0 || (::connect(fd, reinterpret_cast<sockaddr*>(&proxy_sa), proxy_len) != 0 &&
                         errno != EINPROGRESS)) {
            const std::string why = std::string("connect: ") + err_text(errno);
            if (fd >= 0) ::close(fd);
            (void)ipc::send_datagram(link, encode_link(ToExitproc(ProxyDialFailed{dp->flow, why})),
                                     {});
          } else {
            dials.push_back({dp->flow, fd});
          }
        } else if (auto* st = std::get_if<ExitStats>(&*m)) {
          std::ofstream out(stats_file + ".tmp");
          out << "flows_open " << st->flows_open << "\nflows_total " << st->flows_total
              << "\nbytes_up " << st->bytes_up << "\nbytes_down " << st->bytes_down << "\n";
          for (std::size_t i = 0; i < kRefusalKinds; ++i) {
            out << "refused_" << refusal_name(static_cast<Refusal>(i)) << " " << st->refusals[i]
                << "\n";
          }
          out << "dns_queries " << st->dns_queries << "\ndns_ok " << st->dns_ok << "\ndns_failed "
              << st->dns_failed << "\ndns_invalid " << st->dns_invalid << "\ndns_dropped "
              << st->dns_dropped << "\nudp_dropped " << st->udp_dropped << "\nhandshakes_ok "
              << st->handshakes_ok << "\nproxy_ok " << (st->proxy_ok ? 1 : 0) << "\ndials "
              << dials_total << "\nlast_proxy_error " << st->last_proxy_error << "\n";
          out.close();
          (void)::rename((stats_file + ".tmp").c_str(), stats_file.c_str());
        }
      }
    }
    for (std::size_t i = 1; i < pf.size(); ++i) {
      if (pf[i].revents == 0) continue;
      PendingDial& d = dials[i - 1];
      int err = 0;
      socklen_t el = sizeof err;
      ::getsockopt(d.fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err == 0) {
        const int fds[] = {d.fd};
        (void)ipc::send_datagram(link, encode_link(ToExitproc(ProxyConn{d.flow})), fds);
      } else {
        (void)ipc::send_datagram(link,
                                 encode_link(ToExitproc(ProxyDialFailed{
                                     d.flow, std::string("connect: ") + err_text(err)})),
                                 {});
      }
      ::close(d.fd);
      d.fd = -1;
    }
    std::erase_if(dials, [](const PendingDial& d) { return d.fd < 0; });
    const auto now = std::chrono::steady_clock::now();
    if (now - last_stats >= std::chrono::milliseconds(200)) {
      last_stats = now;
      (void)ipc::send_datagram(link, encode_link(ToExitproc(StatsRequest{})), {});
    }
    int status = 0;
    if (::waitpid(*pid, &status, WNOHANG) == *pid) {
      child_status = status;
      break;
    }
  }
  if (child_status < 0) {
    ::kill(*pid, SIGTERM);
    ::waitpid(*pid, &child_status, 0);
    return 0;
  }
  (void)std::fprintf(
      stderr, "exit_driver: exitproc ended: %s %d\n", WIFSIGNALED(child_status) ? "signal" : "exit",
      WIFSIGNALED(child_status) ? WTERMSIG(child_status) : WEXITSTATUS(child_status));
  return 3;
}
