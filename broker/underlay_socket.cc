#include "broker/underlay_socket.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tw::broker {
namespace {

constexpr int kSocketBufferBytes = 7 << 20;  // as tailscaled's socketBufferSize
#ifdef UDP_GRO
constexpr int kUdpGro = UDP_GRO;
#else
constexpr int kUdpGro = 104;  // linux/udp.h
#endif

struct Attempt {
  bool v6;
  std::uint16_t port;
};

Result<ipc::UniqueFd> try_bind(const Attempt& a, const BindFn& bind_fn) {
  ipc::UniqueFd fd(::socket(a.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return make_error(std::string("socket: ") + std::strerror(errno));
  if (a.v6) {
    int off = 0;  // dual-stack, explicitly: never rely on the OS default
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
      return make_error(std::string("IPV6_V6ONLY=0: ") + std::strerror(errno));
    }
  }
  for (int opt : {SO_RCVBUFFORCE, SO_SNDBUFFORCE}) {
    int size = kSocketBufferBytes;
    if (::setsockopt(fd.get(), SOL_SOCKET, opt, &size, sizeof size) != 0) {
      int fallback = opt == SO_RCVBUFFORCE ? SO_RCVBUF : SO_SNDBUF;
      (void)::setsockopt(fd.get(), SOL_SOCKET, fallback, &size, sizeof size);
    }
  }
  // Coalesced receive (UDP_GRO): netproc splits the runs itself and cannot set this
  // under its sandbox. Best effort: without it datagrams arrive one by one.
  int on = 1;
  (void)::setsockopt(fd.get(), IPPROTO_UDP, kUdpGro, &on, sizeof on);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (a.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons(a.port);
    len = sizeof *s6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_port = htons(a.port);
    len = sizeof *s4;
  }
  int rc = bind_fn ? bind_fn(fd.get(), reinterpret_cast<sockaddr*>(&ss), len)
                   : ::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0) return make_error(std::strerror(errno));
  return fd;
}

std::string describe(const Attempt& a) {
  return std::string(a.v6 ? "[::]:" : "0.0.0.0:") + std::to_string(a.port);
}

}  // namespace

std::uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  auto ep = IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  return ep ? ep->port : 0;
}

Result<UnderlaySocket> bind_underlay(const UnderlayBindOptions& opts, const BindFn& bind_fn) {
  std::vector<Attempt> plan;
  if (opts.enable_ipv6) {
    plan.push_back({true, opts.port});
    if (opts.port != 0) plan.push_back({true, 0});
  }
  plan.push_back({false, opts.port});
  if (opts.port != 0) plan.push_back({false, 0});

  UnderlaySocket out;
  std::string failures;
  for (const Attempt& a : plan) {
    auto fd = try_bind(a, bind_fn);
    if (fd) {
      out.fd = std::move(*fd);
      out.v6 = a.v6;
      out.port = local_port(out.fd.get());
      return out;
    }
    const std::string msg = "bind " + describe(a) + " failed (" + fd.error() + ")";
    out.warnings.push_back(msg + "; falling back");
    failures += (failures.empty() ? "" : "; ") + msg;
  }
  return make_error("every underlay bind failed: " + failures);
}

}  // namespace tw::broker
