#include "ipc/doorbell.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <string>

namespace tw::ipc {

Result<UniqueFd> make_doorbell() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return make_error(std::string("eventfd: ") + std::strerror(errno));
  return UniqueFd(fd);
}

void drain_doorbell(int fd) {
  std::uint64_t v;
  ssize_t n = ::read(fd, &v, sizeof v);
  (void)n;
}

RingReader::RingReader(boost::asio::io_context& io, RingConsumer& consumer, UniqueFd doorbell,
                       std::size_t capacity_per_packet, Options options, BatchHandler on_batch)
    : io_(io), consumer_(consumer), doorbell_(io, doorbell.release()), options_(options),
      on_batch_(std::move(on_batch)), batch_(capacity_per_packet),
      alive_(std::make_shared<bool>(true)) {}

RingReader::~RingReader() {
  *alive_ = false;
  boost::system::error_code ignored;
  doorbell_.close(ignored);
}

void RingReader::start() {
  if (running_) return;
  running_ = true;
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(io_, [this, alive] {
    if (!alive.expired()) poll();
  });
}

void RingReader::stop() {
  running_ = false;
  boost::system::error_code ignored;
  doorbell_.cancel(ignored);
}

void RingReader::poll() {
  std::weak_ptr<bool> alive = alive_;
  for (int i = 0; i < options_.bursts_per_turn; ++i) {
    if (!running_) return;
    if (consumer_.pop(batch_) == 0) {
      if (++empty_polls_ > options_.spin_polls) return sleep();
      continue;
    }
    empty_polls_ = 0;
    on_batch_(batch_);
    if (alive.expired()) return;
  }
  // Still busy: let other handlers run, then carry on without a syscall.
  boost::asio::post(io_, [this, alive] {
    if (!alive.expired()) poll();
  });
}

void RingReader::sleep() {
  empty_polls_ = 0;
  std::weak_ptr<bool> alive = alive_;
  if (!consumer_.prepare_to_sleep()) {
    boost::asio::post(io_, [this, alive] {
      if (!alive.expired()) poll();
    });
    return;
  }
  doorbell_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this, alive](const boost::system::error_code& ec) {
                         if (alive.expired() || ec || !running_) return;
                         drain_doorbell(doorbell_.native_handle());
                         consumer_.woke();
                         if (on_wake_) {
                           on_wake_();
                           if (alive.expired()) return;
                         }
                         poll();
                       });
}

}  // namespace tw::ipc
