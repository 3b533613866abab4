// Doorbells (one eventfd per ring direction) and RingReader, which drains a ring
// from a Boost.Asio event loop: it pops bursts while there is work, yields to the
// loop between bursts, optionally spins a little when the ring runs dry, and then
// sleeps on the eventfd using the wakeup-flag protocol in ring.h.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>

#include "common/result.h"
#include "ipc/ring.h"
#include "ipc/unique_fd.h"

namespace tw::ipc {

// Non-blocking, close-on-exec eventfd.
Result<UniqueFd> make_doorbell();
// Reads (and so resets) the eventfd counter; harmless when it is zero.
void drain_doorbell(int fd);

class RingReader {
 public:
  using BatchHandler = std::function<void(const PacketBatch&)>;

  struct Options {
    int bursts_per_turn = 16;  // bursts before yielding to other loop work
    int spin_polls = 0;        // empty polls before sleeping (busy-poll budget)
  };

  // The reader keeps a reference to `consumer`; it owns the doorbell fd.
  RingReader(boost::asio::io_context& io, RingConsumer& consumer, UniqueFd doorbell,
             std::size_t capacity_per_packet, Options options, BatchHandler on_batch);
  ~RingReader();
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  void start();
  void stop();
  // Runs after every wake-up on the doorbell: this process's own held-back work
  // (the room bell of the ring it produces rings the same eventfd, ring.h) goes on.
  void set_on_wake(std::function<void()> on_wake) { on_wake_ = std::move(on_wake); }

 private:
  void poll();
  void sleep();

  boost::asio::io_context& io_;
  RingConsumer& consumer_;
  boost::asio::posix::stream_descriptor doorbell_;
  Options options_;
  BatchHandler on_batch_;
  std::function<void()> on_wake_;
  PacketBatch batch_;
  bool running_ = false;
  int empty_polls_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace tw::ipc
