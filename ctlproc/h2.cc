#include "ctlproc/h2.h"

#include <nghttp2/nghttp2.h>

#include <charconv>
#include <cstring>

namespace tw::ctl {

struct H2Callbacks {
  static H2Client* self(void* user) { return static_cast<H2Client*>(user); }

  static H2Client::StreamState* stream(nghttp2_session* s, std::int32_t id) {
    return static_cast<H2Client::StreamState*>(nghttp2_session_get_stream_user_data(s, id));
  }

  static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t /*flags*/, void* /*user*/) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    auto* st = stream(s, frame->hd.stream_id);
    if (st == nullptr) return 0;
    if (namelen == 7 && std::memcmp(name, ":status", 7) == 0 && st->status == 0) {
      int code = 0;
      auto [p, ec] = std::from_chars(reinterpret_cast<const char*>(value),
                                     reinterpret_cast<const char*>(value) + valuelen, code);
      if (ec != std::errc() || code < 100 || code > 999) return NGHTTP2_ERR_CALLBACK_FAILURE;
      (void)p;
      st->status = code;
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* /*user*/) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      auto* st = stream(s, frame->hd.stream_id);
      if (st != nullptr && st->handlers.on_headers) st->handlers.on_headers(st->status);
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    self(user)->stats_.bytes_in += len;
    auto* st = stream(s, id);
    if (st != nullptr && st->handlers.on_data) st->handlers.on_data(ByteView(data, len));
    return 0;
  }

  static int on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t error_code,
                             void* user) {
    auto* c = self(user);
    auto it = c->streams_.find(id);
    if (it == c->streams_.end()) return 0;
    auto st = std::move(it->second);
    c->streams_.erase(it);
    nghttp2_session_set_stream_user_data(s, id, nullptr);
    if (st->handlers.on_close) st->handlers.on_close(error_code);
    return 0;
  }

  static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t len,
                           std::uint32_t* data_flags, nghttp2_data_source* /*src*/,
                           void* /*user*/) {
    auto* st = stream(s, id);
    if (st == nullptr) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    const std::size_t n = std::min(len, st->body.size() - st->sent);
    std::memcpy(buf, st->body.data() + st->sent, n);
    st->sent += n;
    if (st->sent == st->body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

H2Client::H2Client(std::string authority) : authority_(std::move(authority)) {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    init_ = make_error("http2: out of memory");
    dead_ = true;
    return;
  }
  nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Callbacks::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Bound what a hostile server can make us hold in header tables.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  const int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    init_ = make_error(std::string("http2: ") + nghttp2_strerror(rv));
    session_ = nullptr;
    dead_ = true;
    return;
  }
  // A 1 MiB stream window so a large map does not crawl; header lists are bounded.
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (int r = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                                      sizeof settings / sizeof settings[0]);
      r != 0) {
    init_ = make_error(std::string("http2: settings: ") + nghttp2_strerror(r));
    dead_ = true;
  }
}

H2Client::~H2Client() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Result<std::int32_t> H2Client::request(const std::string& method, const std::string& path,
                                       std::vector<std::pair<std::string, std::string>> headers,
                                       std::string body, H2Handlers handlers) {
  if (dead_ || session_ == nullptr) return make_error("http2: session is closed");
  auto st = std::make_unique<StreamState>();
  st->handlers = std::move(handlers);
  st->body = std::move(body);
  const std::string scheme = "https";  // as Tailscale's client: the Noise link is the security
  const std::string clen = std::to_string(st->body.size());
  std::vector<std::pair<std::string, std::string>> all = {
      {":method", method}, {":scheme", scheme}, {":authority", authority_}, {":path", path}};
  if (!st->body.empty()) {
    all.emplace_back("content-type", "application/json");
    all.emplace_back("content-length", clen);
  }
  for (auto& h : headers) all.push_back(std::move(h));
  std::vector<nghttp2_nv> nva;
  nva.reserve(all.size());
  for (auto& [n, v] : all) {
    nva.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(n.data()),
                             reinterpret_cast<std::uint8_t*>(v.data()), n.size(), v.size(),
                             NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider prov{};
  prov.read_callback = &H2Callbacks::read_body;
  const std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                                 st->body.empty() ? nullptr : &prov, st.get());
  if (id < 0) return make_error(std::string("http2: request: ") + nghttp2_strerror(id));
  streams_.emplace(id, std::move(st));
  ++stats_.streams;
  return id;
}

void H2Client::cancel(std::int32_t stream_id) {
  if (session_ != nullptr && streams_.contains(stream_id)) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  }
}

Status H2Client::feed(ByteView in) {
  if (dead_ || session_ == nullptr) return make_error("http2: session is closed");
  const ssize_t n = nghttp2_session_mem_recv(session_, in.data(), in.size());
  if (n < 0) {
    dead_ = true;
    return make_error(std::string("http2: ") + nghttp2_strerror(static_cast<int>(n)));
  }
  return ok_status();
}

Bytes H2Client::take_output() {
  Bytes out;
  if (session_ == nullptr) return out;
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      dead_ = true;
      break;
    }
    if (n == 0) break;
    out.insert(out.end(), data, data + n);
  }
  stats_.bytes_out += out.size();
  return out;
}

bool H2Client::alive() const {
  if (dead_ || session_ == nullptr) return false;
  return nghttp2_session_want_read(session_) != 0 || nghttp2_session_want_write(session_) != 0;
}

}  // namespace tw::ctl
