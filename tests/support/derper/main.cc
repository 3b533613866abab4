// tailwarden-derper: the DERP relay (and STUN responder) used by the tests, and fit
// for self-hosting. Prints "listening <derp port> <stun port>" once bound and writes
// the same two numbers to --port-file, so tests can ask for ephemeral ports.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include "common/keys.h"
#include "tests/support/derper/server.h"

namespace {

volatile bool g_stop = false;
void on_signal(int) { g_stop = true; }

tw::Result<tw::NodePrivate> load_or_create_key(const std::string& path) {
  if (path.empty()) return tw::NodePrivate::generate();
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    auto k = tw::NodePrivate::parse(text);
    if (!k) return tw::make_error(path + ": " + k.error());
    return k;
  }
  auto k = tw::NodePrivate::generate();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << k.to_string() << "\n";
    if (!out) return tw::make_error("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return tw::make_error("cannot rename " + tmp);
  return k;
}

bool write_port_file(const std::string& path, std::uint16_t port, std::uint16_t stun) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << " " << stun << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tailwarden-derper: DERP relay and STUN responder"};
  std::string listen = "127.0.0.1:3340";
  std::string cert, key, key_file, port_file;
  bool plain = false;
  int stun_port = -1;
  int ping_ms = 0;
  int keepalive_ms = 60000;
  int write_timeout_ms = 2000;
  app.add_option("--listen", listen, "address:port for DERP (port 0 = ephemeral)");
  app.add_option("--tls-cert", cert, "PEM certificate chain");
  app.add_option("--tls-key", key, "PEM private key");
  app.add_flag("--plain-http", plain, "serve DERP over plain HTTP (tests only)");
  app.add_option("--stun-port", stun_port, "UDP port for STUN on the listen address (0 = ephemeral; default off)");
  app.add_option("--key-file", key_file, "server private key (privkey:<hex>); created if missing");
  app.add_option("--port-file", port_file, "write '<derp port> <stun port>' here once bound");
  app.add_option("--ping-interval-ms", ping_ms, "ping each client this often (tests; default never)");
  app.add_option("--keepalive-ms", keepalive_ms, "keepalive interval (plus up to 1/12 of it as jitter)");
  app.add_option("--write-timeout-ms", write_timeout_ms, "drop a client whose socket takes nothing for this long");
  CLI11_PARSE(app, argc, argv);

  tw::crypto_init();
  auto addr = tw::IpPort::parse(listen);
  if (!addr) {
    std::fprintf(stderr, "tailwarden-derper: bad --listen %s\n", listen.c_str());
    return 2;
  }
  if (!plain && (cert.empty() || key.empty())) {
    std::fprintf(stderr, "tailwarden-derper: give --tls-cert and --tls-key, or --plain-http\n");
    return 2;
  }
  auto priv = load_or_create_key(key_file);
  if (!priv) {
    std::fprintf(stderr, "tailwarden-derper: %s\n", priv.error().c_str());
    return 1;
  }
  tw::derper::ServerConfig cfg;
  cfg.listen = *addr;
  cfg.tls_cert = cert;
  cfg.tls_key = key;
  cfg.plain_http = plain;
  cfg.stun_port = stun_port;
  cfg.key = *priv;
  cfg.ping_interval = std::chrono::milliseconds(ping_ms);
  cfg.keepalive = std::chrono::milliseconds(keepalive_ms);
  cfg.write_timeout = std::chrono::milliseconds(write_timeout_ms);
  auto server = tw::derper::DerpServer::create(cfg);
  if (!server) {
    std::fprintf(stderr, "tailwarden-derper: %s\n", server.error().c_str());
    return 1;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::printf("public key %s\nlistening %u %u\n", (*server)->public_key().to_string().c_str(),
              (*server)->port(), (*server)->stun_port());
  std::fflush(stdout);
  if (!port_file.empty() && !write_port_file(port_file, (*server)->port(), (*server)->stun_port())) {
    std::fprintf(stderr, "tailwarden-derper: cannot write %s\n", port_file.c_str());
    return 1;
  }
  (*server)->run(&g_stop);
  return 0;
}
