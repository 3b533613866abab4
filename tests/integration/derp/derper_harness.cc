#include "tests/integration/derp/derper_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <sodium.h>

namespace tw::derptest {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tw-derp-XXXXXX").string();
  path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

bool make_test_certs(const TempDir& dir) {
  std::string d = dir.path();
  std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  std::string cmd =
      "cd " + d + " && openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=tw-test-ca" +
      " && openssl req" + ec + "-keyout leaf.key -out leaf.csr -subj /CN=derp.test" +
      " && printf 'subjectAltName=DNS:derp.test,IP:127.0.0.1\\n' > ext.cnf" +
      " && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2"
      " -extfile ext.cnf >/dev/null 2>&1";
  return std::system((cmd + " 2>/dev/null").c_str()) == 0;
}

Derper::Derper(const TempDir& dir, std::vector<std::string> args, std::string listen) {
  out_file_ = dir.file("derper.out." + std::to_string(reinterpret_cast<std::uintptr_t>(this)));
  std::string port_file = out_file_ + ".port";
  args.insert(args.begin(), {TW_DERPER_BIN, "--listen", listen, "--port-file", port_file});
  std::fflush(nullptr);  // the child must not replay our buffered output
  pid_ = ::fork();
  if (pid_ == 0) {
    FILE* f = std::freopen(out_file_.c_str(), "w", stdout);
    (void)f;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  for (int i = 0; i < 500 && pid_ > 0; ++i) {
    std::ifstream in(port_file);
    unsigned p = 0, s = 0;
    if (in >> p >> s) {
      port_ = static_cast<std::uint16_t>(p);
      stun_port_ = static_cast<std::uint16_t>(s);
      return;
    }
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Derper::~Derper() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Derper::output() const {
  std::ifstream in(out_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int connect_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  derp::set_tcp_nodelay(fd);  // as the broker does on the DERP connections it dials
  return fd;
}

TestClient::TestClient(std::uint16_t port, derp::DerpClientConfig cfg)
    : priv_(NodePrivate::generate()), pub_(priv_.public_key()) {
  int fd = connect_loopback(port);
  if (fd < 0) {
    error_ = "connect failed";
    return;
  }
  cfg.self = pub_;
  // In production dataproc seals; here libsodium with the test's own key.
  auto sealer = [this](const NodePublic& server, const std::string& json) -> Result<Bytes> {
    Bytes out(crypto_box_NONCEBYTES + crypto_box_MACBYTES + json.size());
    randombytes_buf(out.data(), crypto_box_NONCEBYTES);
    if (crypto_box_easy(out.data() + crypto_box_NONCEBYTES, reinterpret_cast<const std::uint8_t*>(json.data()),
                        json.size(), out.data(), server.data(), priv_.data()) != 0)
      return make_error("crypto_box_easy failed");
    return out;
  };
  derp::DerpClientEvents ev;
  ev.on_ready = [this] { ready = true; };
  ev.on_packet = [this](const NodePublic& src, ByteView p) {
    ++packets_seen;
    if (keep_packets) packets.push_back({src, Bytes(p.begin(), p.end())});
  };
  ev.on_peer_gone = [this](const NodePublic& k, derp::PeerGoneReason r) { gone.push_back({k, r}); };
  auto c = derp::DerpClient::start(fd, std::move(cfg), sealer, std::move(ev), Clock::now());
  if (!c) {
    error_ = c.error();
    return;
  }
  client_ = std::move(*c);
}

void TestClient::step(TimePoint now) {
  if (!client_) return;
  if (auto st = client_->on_io(now); !st) {
    error_ = st.error();
    client_.reset();
  }
}

bool pump_until(const std::vector<TestClient*>& clients, const std::function<bool()>& done, int timeout_ms) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (Clock::now() >= end) return false;
    std::vector<pollfd> fds;
    std::vector<TestClient*> owners;
    for (TestClient* c : clients) {
      if (!c->started()) continue;
      short ev = POLLIN;
      if (c->client().wants_write()) ev |= POLLOUT;
      fds.push_back(pollfd{c->client().fd(), ev, 0});
      owners.push_back(c);
    }
    if (fds.empty()) return done();
    ::poll(fds.data(), fds.size(), 10);
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents != 0) owners[i]->step(Clock::now());
  }
  return true;
}

derp::DerpClientConfig plain_config() {
  derp::DerpClientConfig cfg;
  cfg.host_name = "127.0.0.1";
  cfg.plain_http = true;
  return cfg;
}

derp::DerpClientConfig insecure_tls_config() {
  derp::DerpClientConfig cfg;
  cfg.host_name = "127.0.0.1";
  cfg.tls.insecure_for_tests = true;
  return cfg;
}

}  // namespace tw::derptest
