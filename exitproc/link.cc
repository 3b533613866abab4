#include "exitproc/link.h"

#include <algorithm>
#include <type_traits>

#include "ipc/link_frame.h"
#include "ipc/wire.h"

namespace tw::exitproc {
namespace {

using ipc::BodyReader;
using ipc::BodyWriter;

constexpr ipc::LinkFraming kFraming{"exit link", kLinkMagic, kLinkVersion, kMaxLinkBody};

void put_limits(BodyWriter& w, const ExitLimits& l) {
  w.u32(l.max_flows);
  w.u32(l.max_flows_per_source);
  w.u32(l.idle_timeout_ms);
  w.u32(l.handshake_timeout_ms);
  w.u32(l.max_dns_queries);
  w.u32(l.dns_timeout_ms);
}

ExitLimits get_limits(BodyReader& r) {
  ExitLimits l;
  l.max_flows = r.u32();
  l.max_flows_per_source = r.u32();
  l.idle_timeout_ms = r.u32();
  l.handshake_timeout_ms = r.u32();
  l.max_dns_queries = r.u32();
  l.dns_timeout_ms = r.u32();
  if (!r.ok()) return l;
  // Bounds that keep exitproc's memory and timers sane whatever the broker sends.
  if (l.max_flows == 0 || l.max_flows > 65536) {
    r.fail("max_flows out of range (1..65536)");
  } else if (l.max_flows_per_source == 0 || l.max_flows_per_source > l.max_flows) {
    r.fail("max_flows_per_source out of range (1..max_flows)");
  } else if (l.idle_timeout_ms < 1000 || l.idle_timeout_ms > 86'400'000) {
    r.fail("idle_timeout_ms out of range (1 s..1 day)");
  } else if (l.handshake_timeout_ms < 100 || l.handshake_timeout_ms > 120'000) {
    r.fail("handshake_timeout_ms out of range (100 ms..2 min)");
  } else if (l.max_dns_queries == 0 || l.max_dns_queries > 4096) {
    r.fail("max_dns_queries out of range (1..4096)");
  } else if (l.dns_timeout_ms < 100 || l.dns_timeout_ms > 60'000) {
    r.fail("dns_timeout_ms out of range (100 ms..1 min)");
  }
  return l;
}

}  // namespace

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kDialFailed:
      return "dial_failed";
    case Refusal::kProxyHandshake:
      return "proxy_handshake";
    case Refusal::kAuthRefused:
      return "auth_refused";
    case Refusal::kConnectRefused:
      return "connect_refused";
    case Refusal::kProxyClosed:
      return "proxy_closed";
    case Refusal::kLimitTotal:
      return "limit_total";
    case Refusal::kLimitPerSource:
      return "limit_per_source";
    case Refusal::kIdle:
      return "idle";
    case Refusal::kNoDestination:
      return "no_destination";
  }
  return "unknown";
}

Bytes encode_link(const ToExitproc& m) {
  return ipc::encode_link_message(kFraming, m, [](BodyWriter& w, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, ExitSetup>) {
      w.u8(static_cast<std::uint8_t>(v.kind));
      w.text(v.proxy_host);
      w.text(v.username);
      w.text(v.password);
      w.raw(v.dns_resolver);
      put_limits(w, v.limits);
    } else if constexpr (std::is_same_v<T, ProxyConn>) {
      w.u64(v.flow);
    } else if constexpr (std::is_same_v<T, ProxyDialFailed>) {
      w.u64(v.flow);
      w.text(v.reason.substr(0, kMaxLinkText));
    } else {
      static_assert(std::is_same_v<T, StatsRequest>);
    }
  });
}

Bytes encode_link(const ToBroker& m) {
  return ipc::encode_link_message(kFraming, m, [](BodyWriter& w, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, DialProxy>) {
      w.u64(v.flow);
    } else {
      static_assert(std::is_same_v<T, ExitStats>);
      for (std::uint64_t x : {v.flows_open, v.flows_total, v.bytes_up, v.bytes_down}) w.u64(x);
      w.u8(static_cast<std::uint8_t>(kRefusalKinds));
      for (std::uint64_t x : v.refusals) w.u64(x);
      for (std::uint64_t x : {v.dns_queries, v.dns_ok, v.dns_failed, v.dns_invalid, v.dns_dropped,
                              v.udp_dropped, v.handshakes_ok})
        w.u64(x);
      w.u8(v.proxy_ok ? 1 : 0);
      w.text(v.last_proxy_error.substr(0, kMaxLinkText));
    }
  });
}

Result<ToExitproc> decode_to_exitproc(ByteView datagram, std::size_t fds) {
  auto f = ipc::unframe_link(kFraming, datagram);
  if (!f) return make_error(f.error());
  BodyReader r(f->body);
  switch (f->type) {
    case ExitSetup::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, kSetupFds, "ExitSetup"); !st)
        return Error{st.error()};
      ExitSetup s;
      const std::uint8_t kind = r.u8();
      if (kind != 1 && kind != 2) r.fail("unknown proxy kind");
      s.kind = static_cast<ProxyKind>(kind);
      s.proxy_host = r.text(kMaxProxyHost);
      s.username = r.text(kMaxCredential);
      s.password = r.text(kMaxCredential);
      for (auto& b : s.dns_resolver) b = r.u8();
      s.limits = get_limits(r);
      if (r.ok() && s.username.empty() && !s.password.empty())
        r.fail("a password without a username");
      if (r.ok() && s.kind == ProxyKind::kHttpConnect && s.username.find(':') != std::string::npos)
        r.fail("an HTTP Basic username cannot contain ':'");
      if (r.ok() && s.dns_resolver == std::array<std::uint8_t, 4>{}) r.fail("DNS resolver 0.0.0.0");
      return ipc::finish_link_body<ToExitproc>(kFraming, r, std::move(s), "ExitSetup");
    }
    case ProxyConn::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 1, "ProxyConn"); !st)
        return Error{st.error()};
      ProxyConn c;
      c.flow = r.u64();
      return ipc::finish_link_body<ToExitproc>(kFraming, r, c, "ProxyConn");
    }
    case ProxyDialFailed::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 0, "ProxyDialFailed"); !st)
        return Error{st.error()};
      ProxyDialFailed d;
      d.flow = r.u64();
      d.reason = r.text(kMaxLinkText);
      return ipc::finish_link_body<ToExitproc>(kFraming, r, std::move(d), "ProxyDialFailed");
    }
    case StatsRequest::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 0, "StatsRequest"); !st)
        return Error{st.error()};
      return ipc::finish_link_body<ToExitproc>(kFraming, r, StatsRequest{}, "StatsRequest");
    }
    default:
      return ipc::link_type_not_for(kFraming, f->type, "exitproc");
  }
}

Result<ToBroker> decode_to_broker(ByteView datagram, std::size_t fds) {
  auto f = ipc::unframe_link_from_child(kFraming, datagram, fds, "exitproc");
  if (!f) return make_error(f.error());
  BodyReader r(f->body);
  switch (f->type) {
    case DialProxy::kType: {
      DialProxy d;
      d.flow = r.u64();
      return ipc::finish_link_body<ToBroker>(kFraming, r, d, "DialProxy");
    }
    case ExitStats::kType: {
      ExitStats s;
      for (std::uint64_t* x : {&s.flows_open, &s.flows_total, &s.bytes_up, &s.bytes_down})
        *x = r.u64();
      if (r.ok() && r.u8() != kRefusalKinds) r.fail("refusal count mismatch");
      for (auto& x : s.refusals) x = r.u64();
      for (std::uint64_t* x : {&s.dns_queries, &s.dns_ok, &s.dns_failed, &s.dns_invalid,
                               &s.dns_dropped, &s.udp_dropped, &s.handshakes_ok})
        *x = r.u64();
      const std::uint8_t ok = r.u8();
      if (ok > 1) r.fail("proxy_ok is not a boolean");
      s.proxy_ok = ok == 1;
      s.last_proxy_error = r.text(kMaxLinkText);
      return ipc::finish_link_body<ToBroker>(kFraming, r, std::move(s), "ExitStats");
    }
    default:
      return ipc::link_type_not_for(kFraming, f->type, "the broker");
  }
}

}  // namespace tw::exitproc
