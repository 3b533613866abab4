#include "netproc/derp/client.h"

#include <unistd.h>

#include "netproc/derp/http_upgrade.h"

namespace tw::derp {

Result<std::unique_ptr<DerpClient>> DerpClient::start(int fd, DerpClientConfig cfg, ClientInfoSealer sealer,
                                                      DerpClientEvents events, TimePoint now,
                                                      MetricsRegistry* metrics) {
  if (auto st = make_nonblocking(fd); !st) {
    ::close(fd);
    return make_error(st.error());
  }
  std::unique_ptr<Stream> stream;
  if (cfg.plain_http) {
    stream = std::make_unique<PlainStream>(fd);
  } else {
    cfg.tls.verify_name = cfg.cert_name.empty() ? cfg.host_name : cfg.cert_name;
    SslCtxPtr own;
    SSL_CTX* ctx = cfg.ssl_ctx;
    if (ctx == nullptr) {
      auto made = make_client_ctx(cfg.tls);
      if (!made) {
        ::close(fd);
        return make_error(made.error());
      }
      own = std::move(*made);
      ctx = own.get();
    }
    // The SSL object holds its own reference to the context.
    auto tls = TlsStream::client(ctx, fd, cfg.tls);
    if (!tls) {
      ::close(fd);
      return make_error(tls.error());
    }
    stream = std::move(*tls);
  }
  std::unique_ptr<DerpClient> c(
      new DerpClient(std::move(stream), std::move(cfg), std::move(sealer), std::move(events), now, metrics));
  std::string req = upgrade_request(c->cfg_.host_name);
  c->out_.assign(req.begin(), req.end());
  if (auto st = c->flush(); !st) return make_error(st.error());
  return c;
}

DerpClient::DerpClient(std::unique_ptr<Stream> stream, DerpClientConfig cfg, ClientInfoSealer sealer,
                       DerpClientEvents events, TimePoint now, MetricsRegistry* metrics)
    : stream_(std::move(stream)),
      cfg_(std::move(cfg)),
      sealer_(std::move(sealer)),
      events_(std::move(events)),
      last_read_(now) {
  if (metrics) {
    counters_.pongs_sent = &metrics->counter("derp_client_pongs_sent_total", "Server pings answered");
    counters_.unknown_frames =
        &metrics->counter("derp_client_unknown_frames_total", "Frames of unknown type skipped");
    counters_.short_packets =
        &metrics->counter("derp_client_bad_recv_packets_total", "RecvPacket frames dropped as malformed");
  }
}

Status DerpClient::on_io(TimePoint now) {
  if (auto st = flush(); !st) return st;
  bool got_bytes = false;
  if (auto st = read_available(got_bytes); !st) return st;
  if (got_bytes) last_read_ = std::max(last_read_, now);
  return flush();  // frames the reads produced (Pong, ClientInfo)
}

Status DerpClient::check_timeout(TimePoint now) const {
  if (now >= deadline()) return make_error("derp: nothing received for 120 s");
  return ok_status();
}

Status DerpClient::read_available(bool& got_bytes) {
  std::uint8_t http_chunk[4096];
  for (;;) {
    // Frames are read straight into the frame reader and handled in place.
    const bool http = state_ == State::kHttp;
    MutableByteView into = http ? MutableByteView(http_chunk) : reader_.space(kReadChunk);
    IoResult r = stream_->read(into);
    switch (r.kind) {
      case IoResult::kDone:
        got_bytes = true;
        if (http) {
          if (auto st = consume_http(into.first(r.n)); !st) return st;
        } else {
          reader_.commit(r.n);
        }
        if (auto st = handle_frames(); !st) return st;
        continue;
      case IoResult::kWantRead: return ok_status();
      case IoResult::kWantWrite:
        blocked_on_write_ = true;  // TLS renegotiation/handshake needs the write side
        return ok_status();
      case IoResult::kClosed: return make_error("derp: server closed the connection");
      case IoResult::kError: return make_error("derp: " + r.error);
    }
  }
}

Status DerpClient::consume_http(ByteView bytes) {
  http_buf_.insert(http_buf_.end(), bytes.begin(), bytes.end());
  auto resp = parse_upgrade_response(http_buf_);
  if (!resp) return make_error(resp.error());
  if (!*resp) return ok_status();
  reader_.feed(ByteView(http_buf_).subspan((*resp)->length));
  http_buf_.clear();
  http_buf_.shrink_to_fit();
  state_ = State::kServerKey;
  return ok_status();
}

Status DerpClient::handle_frames() {
  if (state_ == State::kHttp) return ok_status();
  for (;;) {
    auto f = reader_.next_view();
    if (!f) return make_error(f.error());
    if (!*f) return ok_status();
    if (auto st = handle_frame(**f); !st) return st;
  }
}

Status DerpClient::handle_server_key(const FrameView& f) {
  if (f.type != static_cast<std::uint8_t>(FrameType::kServerKey))
    return make_error("derp: expected ServerKey, got frame type " + std::to_string(f.type));
  auto sk = parse_server_key(f.payload);
  if (!sk) return make_error(sk.error());
  server_key_ = sk->key;
  if (!sealer_) {
    if (!cfg_.request_seal) return make_error("derp: no way to seal ClientInfo");
    state_ = State::kSealing;
    cfg_.request_seal(server_key_, client_info_json());
    return ok_status();
  }
  return send_client_info(sealer_(server_key_, client_info_json()));
}

Status DerpClient::provide_sealed(Result<Bytes> sealed) {
  if (state_ != State::kSealing) return make_error("derp: unexpected sealed ClientInfo");
  if (auto st = send_client_info(std::move(sealed)); !st) return st;
  return flush();
}

Status DerpClient::send_client_info(Result<Bytes> sealed) {
  if (!sealed) return make_error("derp: sealing ClientInfo: " + sealed.error());
  if (sealed->size() < kNonceLen) return make_error("derp: sealer returned a short box");
  state_ = State::kServerInfo;
  if (auto st = queue(FrameType::kClientInfo, client_info_payload(cfg_.self, *sealed)); !st) return st;
  if (cfg_.preferred) return queue(FrameType::kNotePreferred, note_preferred_payload(true));
  return ok_status();
}

Status DerpClient::handle_frame(const FrameView& f) {
  if (state_ == State::kServerKey) return handle_server_key(f);
  switch (static_cast<FrameType>(f.type)) {
    case FrameType::kServerInfo: {
      if (auto si = parse_server_info(f.payload); !si) return make_error(si.error());
      if (state_ != State::kReady) {
        state_ = State::kReady;
        if (events_.on_ready) events_.on_ready();
      }
      return ok_status();
    }
    case FrameType::kRecvPacket: {
      auto rp = parse_recv_packet(f.payload);
      if (!rp) {
        if (counters_.short_packets) counters_.short_packets->inc();
        return ok_status();  // Go drops a short RecvPacket and keeps the connection
      }
      if (events_.on_packet) events_.on_packet(rp->src, rp->packet);
      return ok_status();
    }
    case FrameType::kKeepAlive: return ok_status();  // its arrival already refreshed the deadline
    case FrameType::kPeerGone: {
      auto pg = parse_peer_gone(f.payload);
      if (!pg) return ok_status();
      if (events_.on_peer_gone) events_.on_peer_gone(pg->peer, pg->reason);
      return ok_status();
    }
    case FrameType::kPing: {
      auto p = parse_ping(f.payload);
      if (!p) return ok_status();
      if (counters_.pongs_sent) counters_.pongs_sent->inc();
      return queue(FrameType::kPong, *p);
    }
    case FrameType::kPong: {
      auto p = parse_ping(f.payload);
      if (p && events_.on_pong) events_.on_pong(*p);
      return ok_status();
    }
    case FrameType::kHealth:
      if (events_.on_health) events_.on_health(std::string(f.payload.begin(), f.payload.end()));
      return ok_status();
    case FrameType::kRestarting: {
      auto r = parse_restarting(f.payload);
      if (r && events_.on_restarting) events_.on_restarting(*r);
      return ok_status();
    }
    default:
      if (counters_.unknown_frames) counters_.unknown_frames->inc();
      return ok_status();  // unknown or server-only types: skipped
  }
}

bool DerpClient::make_room(std::size_t n) {
  if (out_.size() - out_pos_ + n > cfg_.max_pending_write) return false;
  // Drop the written prefix once it dominates, so a slow socket cannot grow out_.
  if (out_pos_ > 0 && out_pos_ >= out_.size() / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_pos_));
    out_pos_ = 0;
  }
  return true;
}

Status DerpClient::queue(FrameType type, ByteView payload) {
  if (!make_room(kFrameHeaderLen + payload.size())) return make_error("derp: write buffer full");
  append_frame(out_, type, payload);
  return ok_status();
}

Status DerpClient::flush() {
  blocked_on_write_ = false;
  write_waits_read_ = false;
  while (out_pos_ < out_.size()) {
    IoResult r = stream_->write(ByteView(out_).subspan(out_pos_));
    switch (r.kind) {
      case IoResult::kDone: out_pos_ += r.n; continue;
      case IoResult::kWantWrite:
      case IoResult::kWantRead:  // TLS handshake in progress: the next on_io continues it
        blocked_on_write_ = r.kind == IoResult::kWantWrite;
        write_waits_read_ = r.kind == IoResult::kWantRead;
        return ok_status();
      case IoResult::kClosed: return make_error("derp: server closed the connection");
      case IoResult::kError: return make_error("derp: " + r.error);
    }
  }
  out_.clear();
  out_pos_ = 0;
  return ok_status();
}

Status DerpClient::send_packet(const NodePublic& dst, ByteView packet) {
  if (state_ == State::kHttp || state_ == State::kServerKey || state_ == State::kSealing)
    return make_error("derp: handshake not done");
  if (packet.size() > kMaxPacketSize) return make_error("derp: packet over 64 KiB");
  if (!make_room(kFrameHeaderLen + kKeyLen + packet.size())) return make_error("derp: write buffer full");
  append_keyed_frame(out_, FrameType::kSendPacket, dst, packet);
  // Coalesce: packets sent in one event-loop turn share TLS records and write(2)
  // calls; the rest goes out at the next on_io (wants_write() asks for it).
  if (out_.size() - out_pos_ >= kCoalesceBytes) return flush();
  return ok_status();
}

Status DerpClient::note_preferred(bool preferred) {
  if (state_ == State::kHttp || state_ == State::kServerKey || state_ == State::kSealing)
    return make_error("derp: handshake not done");
  if (auto st = queue(FrameType::kNotePreferred, note_preferred_payload(preferred)); !st) return st;
  return flush();
}

Status DerpClient::send_ping(const PingData& data) {
  if (state_ == State::kHttp || state_ == State::kServerKey || state_ == State::kSealing)
    return make_error("derp: handshake not done");
  if (auto st = queue(FrameType::kPing, data); !st) return st;
  return flush();
}

}  // namespace tw::derp
