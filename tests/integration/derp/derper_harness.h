// Test harness for the DERP integration tests: a temp dir with openssl-generated
// certificates, a running tailwarden-derper on 127.0.0.1 with ephemeral ports, and
// DERP clients driven by a small poll loop.
#pragma once

#include <poll.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/keys.h"
#include "netproc/derp/client.h"

namespace tw::derptest {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A CA and a leaf for DNS:derp.test and IP:127.0.0.1, made with the openssl CLI.
// Files: ca.pem, leaf.pem, leaf.key.
bool make_test_certs(const TempDir& dir);

class Derper {
 public:
  // `args` are extra flags; --listen and --port-file are added here.
  Derper(const TempDir& dir, std::vector<std::string> args, std::string listen = "127.0.0.1:0");
  ~Derper();
  Derper(const Derper&) = delete;
  Derper& operator=(const Derper&) = delete;
  bool started() const { return port_ != 0; }
  std::uint16_t port() const { return port_; }
  std::uint16_t stun_port() const { return stun_port_; }
  std::string output() const;  // its stdout so far

 private:
  std::string out_file_;
  int pid_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t stun_port_ = 0;
};

// Blocking connect with TCP_NODELAY (as the broker dials DERP); -1 on failure.
int connect_loopback(std::uint16_t port);

struct ReceivedPacket {
  NodePublic src;
  Bytes packet;
};
struct ReceivedPeerGone {
  NodePublic peer;
  derp::PeerGoneReason reason;
};

// One DERP client with its own node key and a record of what it received.
class TestClient {
 public:
  // Connects to the derper and starts the client; `error()` says why if it failed.
  TestClient(std::uint16_t port, derp::DerpClientConfig cfg);
  bool started() const { return client_ != nullptr; }
  const std::string& error() const { return error_; }
  derp::DerpClient& client() { return *client_; }
  const NodePublic& key() const { return pub_; }
  // Drives the connection once; records failure and drops the client on error.
  void step(TimePoint now);
  bool failed() const { return !error_.empty(); }
  void close() { client_.reset(); }

  bool ready = false;
  bool keep_packets = true;   // false: only count them (benchmarks)
  std::size_t packets_seen = 0;
  std::vector<ReceivedPacket> packets;
  std::vector<ReceivedPeerGone> gone;

 private:
  NodePrivate priv_;
  NodePublic pub_;
  std::unique_ptr<derp::DerpClient> client_;
  std::string error_;
};

// Polls every started client until `done()` or the timeout; true if done.
bool pump_until(const std::vector<TestClient*>& clients, const std::function<bool()>& done,
                int timeout_ms = 5000);

derp::DerpClientConfig plain_config();
derp::DerpClientConfig insecure_tls_config();

}  // namespace tw::derptest
