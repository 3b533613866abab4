// netproc's event loop around the magicsock runtime: the broker control link
// (setup, netmap parts, UDP socket, DERP connections, status topics), the link to
// dataproc (ClientInfo sealing), and the two packet rings.
//
//   data->net ring --(datagram, peer id)--> Runtime::send_wireguard --> UDP / DERP
//   UDP / DERP --> Runtime --(datagram, peer id)--> net->data ring
#pragma once

#include <utility>  // before Asio

#include <boost/asio.hpp>
#include <functional>
#include <memory>

#include "common/metrics.h"
#include "ipc/control_link.h"
#include "ipc/doorbell.h"
#include "ipc/netmap_parts.h"
#include "ipc/ring.h"
#include "ipc/ring_memory.h"
#include "netproc/derp_link.h"
#include "netproc/magicsock/runtime.h"

namespace tw::netproc {

struct AppFds {
  ipc::UniqueFd broker_control;
  ipc::UniqueFd peer_control;
  ipc::RingMemory* rings = nullptr;
  ipc::UniqueFd doorbell_net_to_data;  // we produce net->data: ring it
  ipc::UniqueFd doorbell_data_to_net;  // we consume data->net: wait on it
};

class App {
 public:
  App(boost::asio::io_context& io, AppFds fds);
  ~App();
  // Starts the control links. `on_exit` is called when the broker link closes or
  // the broker says Shutdown (the process must end).
  void start(std::function<void(int code)> on_exit);

 private:
  void on_broker_message(ipc::ReceivedMessage m);
  void on_peer_message(ipc::ReceivedMessage m);
  void reply_status(std::uint32_t request_id, std::string body);
  void on_status_request(const ipc::StatusRequest& msg);
  void on_setup(const ipc::NetprocSetup& s);
  void on_netmap(ipc::NetprocNetmap part);
  void on_ring_batch(const ipc::PacketBatch& batch);
  std::size_t deliver(std::span<const ipc::OutPacket> packets);

  boost::asio::io_context& io_;
  MetricsRegistry metrics_;
  ipc::ControlLink broker_;
  ipc::ControlLink peer_;
  ipc::RingProducer to_data_;
  ipc::RingConsumer from_data_;
  ipc::UniqueFd to_data_bell_;
  ipc::UniqueFd reader_bell_;
  std::unique_ptr<ipc::RingReader> reader_;
  magicsock::SodiumRandom rng_;
  DerpLinkContexts derp_contexts_;  // made before the sandbox
  std::unique_ptr<DerpLink> derp_;
  std::uint32_t home_derp_ = 0;
  std::uint32_t next_register_id_ = 1;
  std::unique_ptr<magicsock::Runtime> runtime_;
  ipc::NetmapAssembler<ipc::NetprocNetmap> assembler_;
  std::function<void(int)> on_exit_;
  Counter& ring_dropped_oversize_;
};

}  // namespace tw::netproc
