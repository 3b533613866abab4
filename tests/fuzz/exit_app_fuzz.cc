// Fuzz target: the exitproc event loop under a hostile broker and hostile proxies. The
// input is a script of operations: link datagrams (well-formed ProxyConn and
// ProxyDialFailed for any flow id, StatsRequest, or raw bytes), client connections,
// any bytes from the proxy ends, clock jumps. The loop must never crash or hang; it
// may end (exit code 1) on a link violation, which is its specified answer.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/keys.h"
#include "exitproc/app.h"
#include "ipc/control_socket.h"

namespace {

using tw::ipc::UniqueFd;
using namespace tw::exitproc;

UniqueFd bound(int type, sockaddr_in& sa) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) std::abort();
  socklen_t l = sizeof sa;
  (void)::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &l);
  if (type == SOCK_STREAM) (void)::listen(fd.get(), 64);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  auto pair = tw::ipc::make_control_pair();
  if (!pair.ok()) std::abort();
  UniqueFd broker = std::move(pair->first);
  UniqueFd child = std::move(pair->second);
  (void)tw::ipc::set_nonblocking(broker.get());
  (void)tw::ipc::set_nonblocking(child.get());
  tw::FakeTimeSource clock;
  AppOptions o;
  o.test_fixed_destination = *tw::IpPort::parse("198.18.7.80:8080");
  App app(child.get(), clock, o);
  sockaddr_in la{}, da{}, ua{};
  {
    UniqueFd lst = bound(SOCK_STREAM, la);
    UniqueFd dns = bound(SOCK_DGRAM, da);
    UniqueFd udp = bound(SOCK_DGRAM, ua);
    ExitSetup s;
    s.kind = size > 0 && (data[0] & 1) ? ProxyKind::kHttpConnect : ProxyKind::kSocks5;
    s.username = "u";
    s.password = "p";
    s.dns_resolver = {198, 18, 9, 53};
    s.limits.max_flows = 4;
    s.limits.max_flows_per_source = 3;
    const int fds[] = {lst.get(), dns.get(), udp.get()};
    (void)tw::ipc::send_datagram(broker.get(), encode_link(ToExitproc(s)), fds);
  }
  std::vector<UniqueFd> clients, proxies;
  std::size_t i = 1;
  auto next = [&]() -> std::uint8_t { return i < size ? data[i++] : 0; };
  bool alive = app.poll_once(0);
  while (alive && i < size) {
    const std::uint8_t op = next() % 8;
    switch (op) {
      case 0:
        if (clients.size() < 6) {
          UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
          (void)::connect(c.get(), reinterpret_cast<sockaddr*>(&la), sizeof la);
          clients.push_back(std::move(c));
        }
        break;
      case 1:
        if (proxies.size() < 6) {
          int sv[2];
          if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
            std::abort();
          UniqueFd theirs(sv[1]);
          proxies.emplace_back(sv[0]);
          const int fds[] = {theirs.get()};
          (void)tw::ipc::send_datagram(
              broker.get(), encode_link(ToExitproc(ProxyConn{std::uint64_t{8} + next() % 16})),
              fds);
        }
        break;
      case 2:
        (void)tw::ipc::send_datagram(
            broker.get(),
            encode_link(ToExitproc(ProxyDialFailed{std::uint64_t{8} + next() % 16, "x"})), {});
        break;
      case 3: {
        const std::uint8_t which = next();
        const std::size_t n = std::min<std::size_t>(next() % 64, size - i);
        if (!proxies.empty())
          (void)::send(proxies[which % proxies.size()].get(), data + i, n, MSG_NOSIGNAL);
        i += n;
        break;
      }
      case 4:
        clock.advance(std::chrono::milliseconds(100 * next()));
        break;
      case 5: {
        const std::size_t n = std::min<std::size_t>(next() % 64, size - i);
        (void)tw::ipc::send_datagram(broker.get(), tw::ByteView(data + i, n), {});
        i += n;
        break;
      }
      case 6: {
        const bool to_dns = (next() & 1) != 0;
        const std::size_t n = std::min<std::size_t>(next() % 64, size - i);
        (void)::sendto(clients.empty() ? broker.get() : clients[0].get(), data + i, n, MSG_NOSIGNAL,
                       nullptr, 0);
        const int u = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        (void)::sendto(u, data + i, n, 0, reinterpret_cast<sockaddr*>(to_dns ? &da : &ua),
                       sizeof da);
        ::close(u);
        i += n;
        break;
      }
      default:
        (void)tw::ipc::send_datagram(broker.get(), encode_link(ToExitproc(StatsRequest{})), {});
        break;
    }
    for (int k = 0; k < 3 && alive; ++k) alive = app.poll_once(0);
  }
  return 0;
}
