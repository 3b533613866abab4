// One control session over one byte stream (TCP or TLS, dialled by someone else):
// the ts2021 upgrade and Noise handshake, HTTP/2 inside the records, register (auth
// key or the interactive AuthURL flow), the streaming map poll and lite endpoint
// updates. Pure: the owner moves bytes and keeps time; the session produces netmaps.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/netmap.h"
#include "common/result.h"
#include "ctlproc/h2.h"
#include "ctlproc/http1.h"
#include "ctlproc/mapstream.h"
#include "ctlproc/noise.h"
#include "ctlproc/tailcfg.h"

namespace tw::ctl {

struct SessionConfig {
  std::string authority;  // host[:port] of the control URL
  KeyBytes machine_private{};
  MachinePublic control_key;
  NodePublic node_key;
  std::optional<DiscoPublic> disco_key;
  std::string auth_key;
  Hostinfo hostinfo;
  std::vector<Endpoint> endpoints;
  int capver = kCapabilityVersion;
  bool compress = true;
};

enum class SessionState {
  kUpgrading,    // upgrade request sent, waiting for 101 + Noise response
  kRegistering,  // /machine/register in flight
  kNeedsLogin,   // AuthURL shown; a followup register waits for it
  kMapping,      // map poll running
  kFailed,
};
const char* session_state_name(SessionState s);

struct SessionStats {
  std::uint64_t maps = 0;  // non-keepalive map messages applied
  std::uint64_t keepalives = 0;
  std::uint64_t lite_updates = 0;
  std::uint64_t bytes_in = 0;  // ciphertext bytes received
  std::uint64_t bytes_out = 0;
};

class Session {
 public:
  explicit Session(SessionConfig cfg);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The bytes that open the connection (HTTP upgrade carrying the Noise initiation).
  Result<Bytes> start();
  // Bytes read from the connection. An error ends the session (state kFailed).
  Status on_bytes(ByteView in);
  // The connection hit EOF.
  void on_eof();
  // Bytes to write now.
  Bytes take_output();

  // New endpoints / home region / disco key: sent as a lite update once mapping.
  void update_endpoints(std::vector<Endpoint> endpoints, std::int64_t home_derp,
                        std::optional<DiscoPublic> disco_key);

  SessionState state() const { return state_; }
  const std::string& error() const { return error_; }
  const std::string& auth_url() const { return auth_url_; }
  const std::string& user() const { return user_; }
  const MapState& map_state() const { return map_; }
  const SessionStats& stats() const { return stats_; }
  // Netmaps produced since the last call, in order (the newest is the one that counts).
  std::vector<Netmap> take_netmaps();
  // Messages (maps or keepalives) received since the last call: for the watchdog.
  std::uint64_t messages_received() const { return stats_.maps + stats_.keepalives; }

 private:
  Status fail(const std::string& why);
  Status after_handshake(ByteView rest);
  Status on_plaintext(ByteView plain);
  Status flush_h2();
  void send_register(const std::string& followup);
  void on_register_done(int status, const std::string& body, std::uint32_t err);
  void start_map_poll();
  void send_lite_update();
  void on_map_data(ByteView data);

  SessionConfig cfg_;
  SessionState state_ = SessionState::kUpgrading;
  std::string error_;
  std::string auth_url_;
  std::string user_;
  std::unique_ptr<Initiator> initiator_;
  Bytes handshake_buf_;
  std::optional<RecordReader> reader_;
  std::optional<RecordWriter> writer_;
  EarlyPayloadFilter early_;
  std::unique_ptr<H2Client> h2_;
  std::unique_ptr<MapFramer> framer_;
  MapState map_;
  std::vector<Netmap> netmaps_;
  Bytes out_;
  SessionStats stats_;
  bool lite_pending_ = false;
  bool lite_in_flight_ = false;
  std::string deferred_error_;
};

}  // namespace tw::ctl
