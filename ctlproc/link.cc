#include "ctlproc/link.h"

#include <algorithm>

#include "ipc/link_frame.h"
#include "ipc/wire.h"

namespace tw::ctl {
namespace {

using ipc::BodyReader;
using ipc::BodyWriter;

constexpr ipc::LinkFraming kFraming{"ctl link", kLinkMagic, kLinkVersion, kMaxLinkBody};

void put_endpoints(BodyWriter& w, const std::vector<Endpoint>& eps) {
  w.u32(static_cast<std::uint32_t>(eps.size()));
  for (const auto& e : eps) {
    w.ip_port(e.addr);
    w.u8(static_cast<std::uint8_t>(e.type));
  }
}

std::vector<Endpoint> get_endpoints(BodyReader& r) {
  std::vector<Endpoint> out;
  const std::uint32_t n = r.count(static_cast<std::uint32_t>(kMaxEndpointsPerPeer), 1 + 16 + 2 + 1);
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    Endpoint e;
    e.addr = r.ip_port();
    const std::uint8_t t = r.u8();
    if (t < 1 || t > 5) r.fail("endpoint type out of range");
    e.type = static_cast<EndpointType>(t);
    out.push_back(e);
  }
  return out;
}

ConnPurpose get_purpose(BodyReader& r) {
  const std::uint8_t p = r.u8();
  if (p != 1 && p != 2) r.fail("unknown connection purpose");
  return static_cast<ConnPurpose>(p);
}

}  // namespace

Bytes encode_link(const ToCtlproc& m) {
  return ipc::encode_link_message(kFraming, m, [](BodyWriter& w, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, CtlSetup>) {
      w.key(v.machine_private);
      w.key(v.node_public.bytes());
      w.key(v.disco_public.bytes());
      w.key(v.control_key);
      w.text(v.authority);
      w.text(v.auth_key);
      w.text(v.hostname);
      w.u32(v.home_derp);
      put_endpoints(w, v.endpoints);
      w.u32(static_cast<std::uint32_t>(v.routable_ips.size()));
      for (const auto& p : v.routable_ips) w.prefix(p);
    } else if constexpr (std::is_same_v<T, CtlConn>) {
      w.u8(static_cast<std::uint8_t>(v.purpose));
    } else if constexpr (std::is_same_v<T, CtlDialFailed>) {
      w.u8(static_cast<std::uint8_t>(v.purpose));
      w.text(v.reason.substr(0, kMaxLinkText));
    } else {
      w.u32(v.home_derp);
      w.key(v.disco_public.bytes());
      put_endpoints(w, v.endpoints);
    }
  });
}

Bytes encode_link(const ToBroker& m) {
  return ipc::encode_link_message(kFraming, m, [](BodyWriter& w, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, CtlDialRequest>) {
      w.u8(static_cast<std::uint8_t>(v.purpose));
    } else if constexpr (std::is_same_v<T, CtlNetmapPart>) {
      w.u64(v.seq);
      w.u16(v.part);
      w.u16(v.parts);
      w.blob(v.data);
    } else {
      for (const std::string* s : {&v.state, &v.auth_url, &v.error, &v.user})
        w.text(s->substr(0, kMaxLinkText));
      w.u64(v.maps);
      w.u64(v.reconnects);
      w.u64(v.bytes_in);
      w.u64(v.bytes_out);
      w.text(v.key_expiry.substr(0, 64));
      w.u8(v.key_expired ? 1 : 0);
      w.u64(v.expired_peers);
    }
  });
}

Result<ToCtlproc> decode_to_ctlproc(ByteView datagram, std::size_t fds) {
  auto f = ipc::unframe_link(kFraming, datagram);
  if (!f) return make_error(f.error());
  BodyReader r(f->body);
  switch (f->type) {
    case CtlSetup::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 0, "CtlSetup"); !st)
        return Error{st.error()};
      CtlSetup s;
      s.machine_private = r.key();
      s.node_public = NodePublic(r.key());
      s.disco_public = DiscoPublic(r.key());
      s.control_key = r.key();
      s.authority = r.text(255);
      s.auth_key = r.text(kMaxLinkText);
      s.hostname = r.text(255);
      s.home_derp = r.u32();
      s.endpoints = get_endpoints(r);
      s.routable_ips.resize(r.count(kMaxRoutableIps, 18));
      for (auto& p : s.routable_ips) p = r.prefix();
      if (r.ok() && s.node_public.is_zero()) r.fail("zero node key");
      if (r.ok() && s.authority.empty()) r.fail("empty control authority");
      auto out = ipc::finish_link_body<ToCtlproc>(kFraming, r, std::move(s), "CtlSetup");
      return out;
    }
    case CtlConn::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 1, "CtlConn"); !st)
        return Error{st.error()};
      CtlConn c;
      c.purpose = get_purpose(r);
      return ipc::finish_link_body<ToCtlproc>(kFraming, r, c, "CtlConn");
    }
    case CtlDialFailed::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 0, "CtlDialFailed"); !st)
        return Error{st.error()};
      CtlDialFailed d;
      d.purpose = get_purpose(r);
      d.reason = r.text(kMaxLinkText);
      return ipc::finish_link_body<ToCtlproc>(kFraming, r, std::move(d), "CtlDialFailed");
    }
    case CtlEndpoints::kType: {
      if (auto st = ipc::expect_link_fds(kFraming, fds, 0, "CtlEndpoints"); !st)
        return Error{st.error()};
      CtlEndpoints e;
      e.home_derp = r.u32();
      e.disco_public = DiscoPublic(r.key());
      e.endpoints = get_endpoints(r);
      return ipc::finish_link_body<ToCtlproc>(kFraming, r, std::move(e), "CtlEndpoints");
    }
    default:
      return ipc::link_type_not_for(kFraming, f->type, "ctlproc");
  }
}

Result<ToBroker> decode_to_broker(ByteView datagram, std::size_t fds) {
  auto f = ipc::unframe_link_from_child(kFraming, datagram, fds, "ctlproc");
  if (!f) return make_error(f.error());
  BodyReader r(f->body);
  switch (f->type) {
    case CtlDialRequest::kType: {
      CtlDialRequest d;
      d.purpose = get_purpose(r);
      return ipc::finish_link_body<ToBroker>(kFraming, r, d, "CtlDialRequest");
    }
    case CtlNetmapPart::kType: {
      CtlNetmapPart p;
      p.seq = r.u64();
      p.part = r.u16();
      p.parts = r.u16();
      p.data = r.blob(kNetmapChunk);
      const std::size_t max_parts = kMaxNetmapBytes / kNetmapChunk;
      if (r.ok() && (p.parts == 0 || p.parts > max_parts || p.part >= p.parts))
        r.fail("bad part numbering");
      return ipc::finish_link_body<ToBroker>(kFraming, r, std::move(p), "CtlNetmapPart");
    }
    case CtlStatus::kType: {
      CtlStatus s;
      for (std::string* t : {&s.state, &s.auth_url, &s.error, &s.user}) *t = r.text(kMaxLinkText);
      s.maps = r.u64();
      s.reconnects = r.u64();
      s.bytes_in = r.u64();
      s.bytes_out = r.u64();
      s.key_expiry = r.text(64);
      const std::uint8_t expired = r.u8();
      if (expired > 1) r.fail("key_expired is not 0 or 1");
      s.key_expired = expired == 1;
      s.expired_peers = r.u64();
      return ipc::finish_link_body<ToBroker>(kFraming, r, std::move(s), "CtlStatus");
    }
    default:
      return ipc::link_type_not_for(kFraming, f->type, "the broker");
  }
}

std::vector<CtlNetmapPart> split_netmap(std::uint64_t seq, const std::string& json) {
  std::vector<CtlNetmapPart> out;
  const std::size_t n = json.empty() ? 1 : (json.size() + kNetmapChunk - 1) / kNetmapChunk;
  for (std::size_t i = 0; i < n; ++i) {
    CtlNetmapPart p;
    p.seq = seq;
    p.part = static_cast<std::uint16_t>(i);
    p.parts = static_cast<std::uint16_t>(n);
    const std::size_t off = i * kNetmapChunk;
    const std::size_t len = std::min(kNetmapChunk, json.size() - off);
    p.data.assign(json.begin() + static_cast<std::ptrdiff_t>(off),
                  json.begin() + static_cast<std::ptrdiff_t>(off + len));
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::optional<std::string>> NetmapAssembler::add(const CtlNetmapPart& p) {
  if (p.part == 0) {
    if (p.seq <= last_done_ && last_done_ != 0)
      return make_error("ctl link: netmap seq went backwards");
    seq_ = p.seq;
    parts_ = p.parts;
    next_ = 0;
    text_.clear();
  } else if (p.seq != seq_ || p.parts != parts_ || p.part != next_) {
    return make_error("ctl link: netmap part out of order");
  }
  if (p.part != next_) return make_error("ctl link: netmap part out of order");
  text_.append(p.data.begin(), p.data.end());
  ++next_;
  if (text_.size() > kMaxNetmapBytes) return make_error("ctl link: netmap larger than 64 MiB");
  if (next_ < parts_) return std::optional<std::string>{};
  last_done_ = seq_;
  std::string text;
  text.swap(text_);
  return std::optional<std::string>(std::move(text));
}

}  // namespace tw::ctl
