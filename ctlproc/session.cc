#include "ctlproc/session.h"

namespace tw::ctl {

const char* session_state_name(SessionState s) {
  switch (s) {
    case SessionState::kUpgrading:
      return "connecting";
    case SessionState::kRegistering:
      return "registering";
    case SessionState::kNeedsLogin:
      return "needs-login";
    case SessionState::kMapping:
      return "connected";
    case SessionState::kFailed:
      return "failed";
  }
  return "?";
}

namespace {
constexpr std::size_t kMaxRegisterBody = 1024 * 1024;
}

Session::Session(SessionConfig cfg) : cfg_(std::move(cfg)) {}

Session::~Session() { secure_wipe(cfg_.machine_private.data(), cfg_.machine_private.size()); }

Status Session::fail(const std::string& why) {
  if (state_ != SessionState::kFailed) {
    state_ = SessionState::kFailed;
    error_ = why;
  }
  return make_error(error_);
}

Result<Bytes> Session::start() {
  initiator_ = std::make_unique<Initiator>(cfg_.machine_private, cfg_.control_key.bytes(),
                                           static_cast<std::uint16_t>(cfg_.capver));
  auto init = initiator_->initiation();
  if (!init) return Error{fail(init.error()).error()};
  const std::string req = upgrade_request(cfg_.authority, *init);
  return Bytes(req.begin(), req.end());
}

Status Session::on_bytes(ByteView in) {
  if (state_ == SessionState::kFailed) return make_error(error_);
  stats_.bytes_in += in.size();
  if (state_ == SessionState::kUpgrading) {
    if (handshake_buf_.size() + in.size() > 64 * 1024)
      return fail("ts2021: upgrade reply too large");
    handshake_buf_.insert(handshake_buf_.end(), in.begin(), in.end());
    auto reply = parse_upgrade_reply(handshake_buf_);
    if (!reply) return fail(reply.error());
    if (!*reply) return ok_status();
    ByteView rest = ByteView(handshake_buf_).subspan((*reply)->length);
    // The Noise reply: a 51-byte response or an error message (3 + n bytes).
    if (rest.size() < 3) return ok_status();
    std::size_t need = kResponseLen;
    if (rest[0] == kMsgError) need = 3 + load_be16(&rest[1]);
    if (rest.size() < need) return ok_status();
    auto keys = initiator_->finish(rest.first(need));
    initiator_.reset();
    if (!keys) return fail(keys.error());
    reader_.emplace(keys->recv);
    writer_.emplace(keys->send);
    Bytes after(rest.begin() + static_cast<std::ptrdiff_t>(need), rest.end());
    handshake_buf_.clear();
    handshake_buf_.shrink_to_fit();
    return after_handshake(after);
  }
  Bytes plain;
  if (auto st = reader_->feed(in, plain); !st) return fail(st.error());
  if (auto st = on_plaintext(plain); !st) return st;
  return flush_h2();
}

Status Session::after_handshake(ByteView rest) {
  h2_ = std::make_unique<H2Client>(cfg_.authority);
  if (auto st = h2_->init_error(); !st) return fail(st.error());
  state_ = SessionState::kRegistering;
  send_register("");
  if (!rest.empty()) {
    Bytes plain;
    if (auto st = reader_->feed(rest, plain); !st) return fail(st.error());
    if (auto st = on_plaintext(plain); !st) return st;
  }
  return flush_h2();
}

Status Session::on_plaintext(ByteView plain) {
  if (plain.empty()) return ok_status();
  Bytes h2bytes;
  if (auto st = early_.feed(plain, h2bytes); !st) return fail(st.error());
  if (!h2bytes.empty()) {
    if (auto st = h2_->feed(h2bytes); !st) return fail(st.error());
  }
  if (!deferred_error_.empty()) return fail(deferred_error_);
  return ok_status();
}

Status Session::flush_h2() {
  if (state_ == SessionState::kFailed) return make_error(error_);
  if (!deferred_error_.empty()) return fail(deferred_error_);
  Bytes h2out = h2_->take_output();
  if (!h2out.empty()) {
    const std::size_t before = out_.size();
    if (auto st = writer_->seal(h2out, out_); !st) return fail(st.error());
    stats_.bytes_out += out_.size() - before;
  }
  return ok_status();
}

Bytes Session::take_output() {
  if (h2_ && writer_ && state_ != SessionState::kFailed) (void)flush_h2();
  Bytes out;
  out.swap(out_);
  return out;
}

void Session::on_eof() {
  if (state_ != SessionState::kUpgrading) {
    (void)fail("control connection closed by the server");
  } else if (auto r = parse_upgrade_reply(handshake_buf_); r.ok() && r->has_value()) {
    // 101 came, the Noise reply did not: the server could not decrypt our initiation.
    (void)fail(
        "ts2021: control closed the connection after the upgrade (Noise handshake refused: wrong "
        "control key?)");
  } else {
    (void)fail("ts2021: connection closed during the upgrade");
  }
}

void Session::send_register(const std::string& followup) {
  RegisterParams p;
  p.version = cfg_.capver;
  p.node_key = cfg_.node_key;
  p.auth_key = followup.empty() ? cfg_.auth_key : std::string();
  p.followup = followup;
  p.hostinfo = cfg_.hostinfo;
  auto body = std::make_shared<std::string>();
  auto status = std::make_shared<int>(0);
  H2Handlers h;
  h.on_headers = [status](int s) { *status = s; };
  h.on_data = [this, body](ByteView d) {
    if (body->size() + d.size() > kMaxRegisterBody) {
      deferred_error_ = "register: response larger than 1 MiB";
      return;
    }
    body->append(reinterpret_cast<const char*>(d.data()), d.size());
  };
  h.on_close = [this, body, status](std::uint32_t err) { on_register_done(*status, *body, err); };
  auto id = h2_->request("POST", "/machine/register", {{"ts-lb", cfg_.node_key.to_string()}},
                         register_request_json(p), std::move(h));
  if (!id) deferred_error_ = id.error();
}

void Session::on_register_done(int status, const std::string& body, std::uint32_t err) {
  if (err != 0) {
    deferred_error_ =
        "register: stream reset by the server (HTTP/2 error " + std::to_string(err) + ")";
    return;
  }
  if (status != 200) {
    std::string text = body.substr(0, 200);
    for (char& c : text) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    deferred_error_ = "register: control answered HTTP " + std::to_string(status) + ": " + text;
    return;
  }
  auto r = parse_register_response(body);
  if (!r) {
    deferred_error_ = "register: " + r.error();
    return;
  }
  if (!r->error.empty()) {
    deferred_error_ = "register: control refused the node: " + r->error.substr(0, 300);
    return;
  }
  if (r->node_key_expired) {
    deferred_error_ = "register: control says the node key has expired (log in again)";
    return;
  }
  user_ = r->user;
  if (!r->auth_url.empty()) {
    auth_url_ = r->auth_url.substr(0, 2048);
    state_ = SessionState::kNeedsLogin;
    send_register(auth_url_);  // blocks server-side until the login completes
    return;
  }
  auth_url_.clear();
  state_ = SessionState::kMapping;
  start_map_poll();
  send_lite_update();
}

void Session::start_map_poll() {
  MapRequestParams p;
  p.version = cfg_.capver;
  p.node_key = cfg_.node_key;
  p.disco_key = cfg_.disco_key;
  p.stream = true;
  p.omit_peers = false;
  p.compress = cfg_.compress;
  p.endpoints = cfg_.endpoints;
  p.hostinfo = cfg_.hostinfo;
  framer_ = std::make_unique<MapFramer>(cfg_.compress);
  auto status = std::make_shared<int>(0);
  H2Handlers h;
  h.on_headers = [this, status](int s) {
    *status = s;
    if (s != 200) deferred_error_ = "map: control answered HTTP " + std::to_string(s);
  };
  h.on_data = [this, status](ByteView d) {
    if (*status == 200) on_map_data(d);
  };
  h.on_close = [this](std::uint32_t err) {
    if (deferred_error_.empty()) {
      deferred_error_ =
          err == 0 ? "map: the server ended the map stream"
                   : "map: stream reset by the server (HTTP/2 error " + std::to_string(err) + ")";
    }
  };
  auto id = h2_->request("POST", "/machine/map", {{"ts-lb", cfg_.node_key.to_string()}},
                         map_request_json(p), std::move(h));
  if (!id) deferred_error_ = id.error();
}

void Session::on_map_data(ByteView d) {
  if (!deferred_error_.empty()) return;
  std::vector<std::string> msgs;
  auto st = framer_->feed(d, msgs);
  for (const auto& text : msgs) {
    auto m = parse_map_response(text);
    if (!m) {
      deferred_error_ = "map: " + m.error();
      return;
    }
    if (m->keep_alive) {
      ++stats_.keepalives;
      continue;
    }
    if (auto a = map_.apply(*m); !a) {
      deferred_error_ = "map: " + a.error();
      return;
    }
    ++stats_.maps;
    auto nm = map_.to_netmap();
    if (!nm) {
      deferred_error_ = "map: " + nm.error();
      return;
    }
    netmaps_.push_back(std::move(*nm));
  }
  if (!st) deferred_error_ = st.error();
}

void Session::update_endpoints(std::vector<Endpoint> endpoints, std::int64_t home_derp,
                               std::optional<DiscoPublic> disco_key) {
  cfg_.endpoints = std::move(endpoints);
  cfg_.hostinfo.preferred_derp = home_derp;
  if (disco_key) cfg_.disco_key = disco_key;
  if (state_ == SessionState::kMapping) send_lite_update();
}

void Session::send_lite_update() {
  if (lite_in_flight_) {
    lite_pending_ = true;  // one at a time; the latest state goes next
    return;
  }
  MapRequestParams p;
  p.version = cfg_.capver;
  p.node_key = cfg_.node_key;
  p.disco_key = cfg_.disco_key;
  p.stream = false;
  p.omit_peers = true;  // never Stream:false without OmitPeers: it ends the long-poll
  p.compress = cfg_.compress;
  p.endpoints = cfg_.endpoints;
  p.hostinfo = cfg_.hostinfo;
  H2Handlers h;
  h.on_data = [](ByteView) {};  // one map (testcontrol) or nothing (Headscale): ignored
  h.on_close = [this](std::uint32_t) {
    lite_in_flight_ = false;
    if (lite_pending_) {
      lite_pending_ = false;
      send_lite_update();
    }
  };
  auto id = h2_->request("POST", "/machine/map", {{"ts-lb", cfg_.node_key.to_string()}},
                         map_request_json(p), std::move(h));
  if (!id) {
    deferred_error_ = id.error();
    return;
  }
  lite_in_flight_ = true;
  ++stats_.lite_updates;
}

std::vector<Netmap> Session::take_netmaps() {
  std::vector<Netmap> out;
  out.swap(netmaps_);
  return out;
}

}  // namespace tw::ctl
