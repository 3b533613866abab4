// netproc's DERP side: the regions it keeps connected (RegionManager), one DerpClient
// per connected region over a TCP fd the broker dialled (DerpDialRequest → DerpConn),
// ClientInfo sealed by dataproc (SealClientInfoRequest), inbound packets handed to the
// magicsock runtime. It is the runtime's DerpRelay.
#pragma once

#include <utility>  // before Asio

#include <boost/asio.hpp>
#include <map>
#include <memory>
#include <optional>

#include "common/metrics.h"
#include "common/netmap.h"
#include "ipc/control_link.h"
#include "netproc/derp/client.h"
#include "netproc/derp/regions.h"
#include "netproc/magicsock/derp_seam.h"

namespace tw::magicsock {
class Runtime;
}

namespace tw::netproc {

struct DerpLinkContexts {
  derp::SslCtxPtr verifying;  // CA bundle loaded before the sandbox
  derp::SslCtxPtr insecure;   // for nodes marked InsecureForTests
};

// Makes both TLS contexts; must run before the seccomp filter (it reads CA files).
Result<DerpLinkContexts> make_derp_contexts();

class DerpLink final : public magicsock::DerpRelay {
 public:
  DerpLink(boost::asio::io_context& io, NodePublic self, ipc::ControlLink& broker, ipc::ControlLink& dataproc,
           DerpLinkContexts contexts, MetricsRegistry& metrics);
  ~DerpLink() override;

  void set_runtime(magicsock::Runtime* runtime) { runtime_ = runtime; }
  // The DERP map in force and our home region; the home region is dialled at once.
  void set_map(DerpMap map, std::uint32_t home);

  void on_derp_conn(const ipc::DerpConn& m, ipc::UniqueFd fd);
  void on_dial_failed(const ipc::DerpDialFailed& m);
  void on_sealed(const ipc::SealClientInfoReply& m);
  // After a rebind the connections may sit on an address that is gone (their reads
  // would only time out after 120 s): drop them all and redial through the broker.
  void reconnect_all();

  // DerpRelay
  bool send(const NodePublic& dst, std::uint32_t peer_region, ByteView packet) override;
  bool available() const override { return regions_.home() != 0; }
  std::uint32_t home_region() const override { return static_cast<std::uint32_t>(regions_.home()); }
  bool region_connected(std::uint32_t region) const override {
    return regions_.connected(static_cast<derp::RegionId>(region));
  }

 private:
  struct Conn {
    std::unique_ptr<derp::DerpClient> client;
    std::unique_ptr<boost::asio::posix::stream_descriptor> sd;
    bool read_armed = false;
    bool write_armed = false;
  };
  void dial(derp::RegionId region);
  void close(derp::RegionId region);
  void fail(derp::RegionId region, const std::string& why);
  void arm(derp::RegionId region);
  void on_ready(derp::RegionId region, bool writable);
  void flush_queue(derp::RegionId region);
  void schedule_tick();
  const DerpNode* node_for(derp::RegionId region) const;

  boost::asio::io_context& io_;
  NodePublic self_;
  ipc::ControlLink& broker_;
  ipc::ControlLink& dataproc_;
  DerpLinkContexts ctx_;
  MetricsRegistry& metrics_;
  derp::RegionManager regions_;
  DerpMap map_;
  std::map<derp::RegionId, Conn> conns_;
  std::map<std::uint32_t, derp::RegionId> pending_seals_;
  std::uint32_t next_seal_id_ = 1;
  boost::asio::steady_timer tick_timer_;
  magicsock::Runtime* runtime_ = nullptr;
  Counter& conn_failures_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tw::netproc
