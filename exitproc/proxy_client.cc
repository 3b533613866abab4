#include "exitproc/proxy_client.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace tw::exitproc {
namespace {

constexpr std::uint8_t kSocksVersion = 5;
constexpr std::uint8_t kMethodNone = 0x00;
constexpr std::uint8_t kMethodUserPass = 0x02;
constexpr std::uint8_t kMethodNoAcceptable = 0xff;
constexpr std::uint8_t kUserPassVersion = 1;
constexpr std::uint8_t kCmdConnect = 1;
constexpr std::uint8_t kAtypIpv4 = 1;
constexpr std::uint8_t kAtypDomain = 3;
constexpr std::uint8_t kAtypIpv6 = 4;

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

const char* socks_reply_text(std::uint8_t rep) {
  switch (rep) {
    case 1:
      return "general SOCKS server failure";
    case 2:
      return "connection not allowed by ruleset";
    case 3:
      return "network unreachable";
    case 4:
      return "host unreachable";
    case 5:
      return "connection refused";
    case 6:
      return "TTL expired";
    case 7:
      return "command not supported";
    case 8:
      return "address type not supported";
    default:
      return "unassigned reply code";
  }
}

// RFC 1928 client: greeting -> method -> [RFC 1929 auth] -> CONNECT -> reply.
class Socks5Handshake final : public ProxyHandshake {
 public:
  Socks5Handshake(const ConnectTarget& t, const Credentials& c) : target_(t), creds_(c) {
    out_ = {kSocksVersion};
    if (creds_.username.empty()) {
      out_.insert(out_.end(), {1, kMethodNone});
    } else {
      // Offering only username/password: a proxy configured with credentials that
      // silently accepts "no authentication" is still fine, but we do not ask for it.
      out_.insert(out_.end(), {1, kMethodUserPass});
    }
  }

 protected:
  std::size_t step(ByteView in) override {
    // Takes exactly what the current message still needs.
    const std::size_t need = want() - have_.size();
    const std::size_t n = std::min(need, in.size());
    have_.insert(have_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    if (have_.size() < want()) {
      check_partial();
      return n;
    }
    complete();
    return n;
  }

 private:
  enum class Phase { kMethod, kAuth, kReply };

  std::size_t want() const {
    switch (phase_) {
      case Phase::kMethod:
      case Phase::kAuth:
        return 2;
      case Phase::kReply: {
        // VER REP RSV ATYP, then the address (length by ATYP), then the port.
        if (have_.size() < 5) return 5;
        switch (have_[3]) {
          case kAtypIpv4:
            return 4 + 4 + 2;
          case kAtypIpv6:
            return 4 + 16 + 2;
          case kAtypDomain:
            return 4 + 1 + std::size_t{have_[4]} + 2;
          default:
            return 5;  // check_partial fails it
        }
      }
    }
    return 2;
  }

  // Failures that are visible before the message is complete (a refusal is final
  // at its second byte; the proxy may close right after it).
  void check_partial() {
    if (phase_ != Phase::kReply || have_.empty()) return;
    if (have_[0] != kSocksVersion)
      return fail(Refusal::kProxyHandshake, "socks5: reply version is not 5");
    if (have_.size() >= 2 && have_[1] != 0) {
      return fail(Refusal::kConnectRefused, std::string("socks5: CONNECT refused: ") +
                                                socks_reply_text(have_[1]) + " (" +
                                                std::to_string(have_[1]) + ")");
    }
    if (have_.size() >= 3 && have_[2] != 0)
      return fail(Refusal::kProxyHandshake, "socks5: reply RSV is not 0");
    if (have_.size() >= 4 && have_[3] != kAtypIpv4 && have_[3] != kAtypIpv6 &&
        have_[3] != kAtypDomain)
      return fail(Refusal::kProxyHandshake, "socks5: unknown address type in the reply");
    if (have_.size() >= 5 && have_[3] == kAtypDomain && have_[4] == 0)
      return fail(Refusal::kProxyHandshake, "socks5: empty domain name in the reply");
  }

  void complete() {
    switch (phase_) {
      case Phase::kMethod: {
        if (have_[0] != kSocksVersion)
          return fail(Refusal::kProxyHandshake, "socks5: method reply version is not 5");
        const std::uint8_t m = have_[1];
        have_.clear();
        if (m == kMethodNoAcceptable) {
          return fail(Refusal::kAuthRefused, creds_.username.empty()
                                                 ? "socks5: proxy requires authentication"
                                                 : "socks5: proxy accepts no offered method");
        }
        if (m == kMethodUserPass && !creds_.username.empty()) {
          phase_ = Phase::kAuth;
          out_.push_back(kUserPassVersion);
          out_.push_back(static_cast<std::uint8_t>(creds_.username.size()));
          out_.insert(out_.end(), creds_.username.begin(), creds_.username.end());
          out_.push_back(static_cast<std::uint8_t>(creds_.password.size()));
          out_.insert(out_.end(), creds_.password.begin(), creds_.password.end());
          return;
        }
        if (m == kMethodNone && creds_.username.empty()) return send_connect();
        return fail(Refusal::kProxyHandshake,
                    "socks5: proxy chose a method we did not offer (" + std::to_string(m) + ")");
      }
      case Phase::kAuth: {
        if (have_[0] != kUserPassVersion)
          return fail(Refusal::kProxyHandshake, "socks5: auth reply version is not 1");
        if (have_[1] != 0) return fail(Refusal::kAuthRefused, "socks5: username/password refused");
        have_.clear();
        return send_connect();
      }
      case Phase::kReply:
        check_partial();
        if (state() == HandshakeState::kRunning) done();
        return;
    }
  }

  void send_connect() {
    phase_ = Phase::kReply;
    out_.insert(out_.end(), {kSocksVersion, kCmdConnect, 0});
    if (target_.ipv4) {
      out_.push_back(kAtypIpv4);
      out_.insert(out_.end(), target_.ipv4->begin(), target_.ipv4->end());
    } else {
      out_.push_back(kAtypDomain);
      out_.push_back(static_cast<std::uint8_t>(target_.domain.size()));
      out_.insert(out_.end(), target_.domain.begin(), target_.domain.end());
    }
    out_.push_back(static_cast<std::uint8_t>(target_.port >> 8));
    out_.push_back(static_cast<std::uint8_t>(target_.port));
  }

  ConnectTarget target_;
  Credentials creds_;
  Phase phase_ = Phase::kMethod;
  Bytes have_;
};

// HTTP/1.1 CONNECT (RFC 9110 9.3.6) with Basic proxy authentication (RFC 7617).
class HttpConnectHandshake final : public ProxyHandshake {
 public:
  HttpConnectHandshake(const ConnectTarget& t, const Credentials& c) {
    const std::string auth = t.authority();
    std::string req = "CONNECT " + auth + " HTTP/1.1\r\nHost: " + auth + "\r\n";
    if (!c.username.empty()) {
      const std::string plain = c.username + ":" + c.password;
      std::string b64(sodium_base64_ENCODED_LEN(plain.size(), sodium_base64_VARIANT_ORIGINAL),
                      '\0');
      sodium_bin2base64(b64.data(), b64.size(),
                        reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
                        sodium_base64_VARIANT_ORIGINAL);
      b64.resize(b64.size() - 1);  // the terminating NUL
      req += "Proxy-Authorization: Basic " + b64 + "\r\n";
      sodium_memzero(b64.data(), b64.size());
    }
    req += "\r\n";
    out_.assign(req.begin(), req.end());
  }

 protected:
  std::size_t step(ByteView in) override {
    // Consume up to and including the blank line that ends the header, never more.
    std::size_t used = 0;
    while (used < in.size()) {
      const std::uint8_t c = in[used++];
      head_.push_back(static_cast<char>(c));
      if (head_.size() > kMaxHttpReplyHeader) {
        fail(Refusal::kProxyHandshake, "http: reply header longer than 8 KiB");
        return used;
      }
      if (head_.size() >= 4 && head_.compare(head_.size() - 4, 4, "\r\n\r\n") == 0) {
        parse();
        return used;
      }
    }
    // A status line that is already wrong need not wait for the rest.
    if (head_.size() >= 12 && !status_line_prefix_ok())
      fail(Refusal::kProxyHandshake, "http: not an HTTP/1.x reply");
    return used;
  }

 private:
  bool status_line_prefix_ok() const {
    return head_.compare(0, 7, "HTTP/1.") == 0 && (head_[7] == '0' || head_[7] == '1') &&
           head_[8] == ' ' && std::isdigit(static_cast<unsigned char>(head_[9])) &&
           std::isdigit(static_cast<unsigned char>(head_[10])) &&
           std::isdigit(static_cast<unsigned char>(head_[11]));
  }

  void parse() {
    // head_ ends with CRLF CRLF; split into CRLF-terminated lines.
    std::string_view all(head_);
    all.remove_suffix(2);  // the blank line's CRLF
    std::size_t pos = 0;
    bool first = true;
    int status = 0;
    while (pos < all.size()) {
      const std::size_t eol = all.find("\r\n", pos);
      if (eol == std::string_view::npos)
        return fail(Refusal::kProxyHandshake, "http: line without CRLF");
      const std::string_view line = all.substr(pos, eol - pos);
      pos = eol + 2;
      for (char ch : line) {
        const auto u = static_cast<unsigned char>(ch);
        if ((u < 0x20 && ch != '\t') || u == 0x7f)
          return fail(Refusal::kProxyHandshake, "http: control character in the reply header");
      }
      if (first) {
        first = false;
        if (line.size() < 12 || !status_line_prefix_ok() || (line.size() > 12 && line[12] != ' '))
          return fail(Refusal::kProxyHandshake, "http: malformed status line");
        status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        if (status < 100) return fail(Refusal::kProxyHandshake, "http: malformed status code");
        continue;
      }
      const std::size_t colon = line.find(':');
      if (colon == 0 || colon == std::string_view::npos || line[0] == ' ' || line[0] == '\t')
        return fail(Refusal::kProxyHandshake, "http: malformed header field");
      for (std::size_t i = 0; i < colon; ++i) {
        if (line[i] == ' ' || line[i] == '\t')
          return fail(Refusal::kProxyHandshake, "http: space in a field name");
      }
    }
    if (first) return fail(Refusal::kProxyHandshake, "http: empty reply");
    if (status >= 200 && status < 300) return done();
    // 407 is the standard answer; some proxies (tinyproxy) answer a CONNECT with bad
    // credentials with 401.
    if (status == 407 || status == 401) {
      return fail(Refusal::kAuthRefused,
                  "http: " + std::to_string(status) + " proxy authentication refused");
    }
    if (status < 200)
      return fail(Refusal::kProxyHandshake, "http: interim " + std::to_string(status) + " reply");
    return fail(Refusal::kConnectRefused, "http: CONNECT answered " + std::to_string(status));
  }

  std::string head_;
};

}  // namespace

std::string ConnectTarget::authority() const {
  std::string host;
  if (ipv4) {
    host = std::to_string((*ipv4)[0]) + "." + std::to_string((*ipv4)[1]) + "." +
           std::to_string((*ipv4)[2]) + "." + std::to_string((*ipv4)[3]);
  } else {
    host = domain;
  }
  return host + ":" + std::to_string(port);
}

std::size_t ProxyHandshake::feed(ByteView in) {
  std::size_t used = 0;
  while (state_ == HandshakeState::kRunning && used < in.size()) {
    const std::size_t n = step(in.subspan(used));
    used += n;
    if (n == 0) break;
  }
  return used;
}

void ProxyHandshake::on_eof() {
  fail(Refusal::kProxyHandshake, "proxy closed the connection during the handshake");
}

Result<std::unique_ptr<ProxyHandshake>> make_handshake(ProxyKind kind, const ConnectTarget& target,
                                                       const Credentials& creds) {
  if (target.port == 0) return make_error("proxy target: port 0");
  if (!target.ipv4) {
    if (target.domain.empty() || target.domain.size() > 255)
      return make_error("proxy target: domain name length not 1..255");
    if (has_control(target.domain) || target.domain.find_first_of(" /@") != std::string::npos)
      return make_error("proxy target: invalid character in the domain name");
    if (kind == ProxyKind::kHttpConnect && target.domain.find(':') != std::string::npos)
      return make_error("proxy target: ':' in a domain name");
  }
  if (creds.username.size() > 255 || creds.password.size() > 255)
    return make_error("proxy credentials: longer than 255 bytes");
  if (creds.username.empty() && !creds.password.empty())
    return make_error("proxy credentials: password without username");
  if (has_control(creds.username) || has_control(creds.password))
    return make_error("proxy credentials: control character");
  if (kind == ProxyKind::kHttpConnect && creds.username.find(':') != std::string::npos)
    return make_error("proxy credentials: ':' in a Basic username");
  std::unique_ptr<ProxyHandshake> h;
  if (kind == ProxyKind::kSocks5) {
    h = std::make_unique<Socks5Handshake>(target, creds);
  } else {
    h = std::make_unique<HttpConnectHandshake>(target, creds);
  }
  return h;
}

}  // namespace tw::exitproc
