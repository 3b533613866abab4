#include "ipc/ring_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "ipc/ring_layout.h"

namespace tw::ipc {
namespace {

constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool geometry_valid(const RingGeometry& g) {
  bool pow2 = g.slot_count != 0 && (g.slot_count & (g.slot_count - 1)) == 0;
  return pow2 && g.slot_count <= kMaxSlotCount && g.slot_capacity > 0 &&
         g.slot_capacity <= kMaxSlotCapacity;
}

std::uint32_t load32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void store32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

namespace {

std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) / to * to; }

std::size_t inline_capacity(std::uint32_t slot_capacity) {
  return std::min<std::size_t>(slot_capacity, layout::kInlineBytes);
}

// Every area starts on a page, so that a consumer's view of the other side's slots
// can be mapped read-only on its own (docs/design.md#4-ipc).
std::size_t dense_bytes(const RingGeometry& g) {
  return round_up(std::size_t{g.slot_count} * ring_slot_stride(g.slot_capacity), layout::kPage);
}
std::size_t overflow_bytes(const RingGeometry& g) {
  return round_up(std::size_t{g.slot_count} * ring_overflow_stride(g.slot_capacity), layout::kPage);
}
std::size_t dense_offset(const RingGeometry& g, std::size_t ring) {
  return layout::kSlotsOffset + ring * dense_bytes(g);
}
std::size_t overflow_offset(const RingGeometry& g, std::size_t ring) {
  return layout::kSlotsOffset + 2 * dense_bytes(g) + ring * overflow_bytes(g);
}

}  // namespace

std::size_t ring_slot_stride(std::uint32_t slot_capacity) {
  std::size_t stride = round_up(layout::kSlotHeaderBytes + inline_capacity(slot_capacity), 64);
  if (stride % layout::kPage == 0) stride += 64;
  return stride;
}

std::size_t ring_overflow_stride(std::uint32_t slot_capacity) {
  std::size_t rest = slot_capacity - inline_capacity(slot_capacity);
  if (rest == 0) return 0;
  std::size_t stride = round_up(rest, 64);
  if (stride % layout::kPage == 0) stride += 64;
  return stride;
}

std::size_t ring_mapping_size(const RingGeometry& g) {
  if (!geometry_valid(g)) return 0;
  return overflow_offset(g, 2);
}

Result<RingMemory> RingMemory::create(const RingGeometry& geometry) {
  std::size_t size = ring_mapping_size(geometry);
  if (size == 0) return make_error("invalid ring geometry");
  RingMemory m;
  m.fd_.reset(::memfd_create("tailwarden-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!m.fd_) return make_error(errno_text("memfd_create"));
  if (::ftruncate(m.fd_.get(), static_cast<off_t>(size)) != 0) {
    return make_error(errno_text("ftruncate"));
  }
  if (::fcntl(m.fd_.get(), F_ADD_SEALS, kRequiredSeals) != 0) {
    return make_error(errno_text("F_ADD_SEALS"));
  }
  m.geometry_ = geometry;
  if (auto s = m.map_and_layout(size, true); !s) return make_error(s.error());
  return m;
}

Result<RingMemory> RingMemory::attach(UniqueFd fd, std::optional<Direction> consumed) {
  int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return make_error(errno_text("ring memory: F_GET_SEALS"));
  if ((seals & kRequiredSeals) != kRequiredSeals) {
    return make_error("ring memory is not sealed against resizing");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error(errno_text("ring memory: fstat"));
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(layout::kSlotsOffset)) {
    return make_error("ring memory has the wrong type or size");
  }
  RingMemory m;
  m.fd_ = std::move(fd);
  if (auto s = m.map_and_layout(static_cast<std::size_t>(st.st_size), false); !s) {
    return make_error(s.error());
  }
  if (consumed) {
    if (auto s = m.protect_consumed(*consumed); !s) return make_error(s.error());
  }
  return m;
}

Status RingMemory::protect_consumed(Direction d) {
  // A read-only open file description of the same memfd: a shared mapping made from
  // it can never be made writable again (mprotect gives EACCES). The writable fd is
  // closed afterwards, so nothing in this process can map those pages writable anew.
  const std::string path = "/proc/self/fd/" + std::to_string(fd_.get());
  UniqueFd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ro) return make_error(errno_text("ring memory: reopening read-only"));
  const auto ring = static_cast<std::size_t>(d);
  const std::pair<std::size_t, std::size_t> areas[] = {
      {dense_offset(geometry_, ring), dense_bytes(geometry_)},
      {overflow_offset(geometry_, ring), overflow_bytes(geometry_)}};
  for (auto [offset, bytes] : areas) {
    if (bytes == 0) continue;
    void* p = ::mmap(base_ + offset, bytes, PROT_READ, MAP_SHARED | MAP_FIXED, ro.get(),
                     static_cast<off_t>(offset));
    if (p == MAP_FAILED)
      return make_error(errno_text("ring memory: mapping the consumed ring read-only"));
  }
  fd_.reset();
  return ok_status();
}

Status RingMemory::map_and_layout(std::size_t size, bool writable_header) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) return make_error(errno_text("mmap ring memory"));
  base_ = static_cast<std::uint8_t*>(p);
  size_ = size;
  if (writable_header) {
    store32(base_ + layout::kMagicOffset, layout::kMagic);
    store32(base_ + layout::kVersionOffset, layout::kVersion);
    store32(base_ + layout::kSlotCountOffset, geometry_.slot_count);
    store32(base_ + layout::kSlotCapacityOffset, geometry_.slot_capacity);
    return ok_status();
  }
  // Read once into private memory; from here on only the local copy is used.
  if (load32(base_ + layout::kMagicOffset) != layout::kMagic ||
      load32(base_ + layout::kVersionOffset) != layout::kVersion) {
    return make_error("ring memory has a bad header");
  }
  geometry_.slot_count = load32(base_ + layout::kSlotCountOffset);
  geometry_.slot_capacity = load32(base_ + layout::kSlotCapacityOffset);
  if (ring_mapping_size(geometry_) != size) {
    return make_error("ring memory geometry does not match its size");
  }
  return ok_status();
}

RingMemory::RingMemory(RingMemory&& o) noexcept
    : fd_(std::move(o.fd_)), base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)), geometry_(o.geometry_) {}

RingMemory& RingMemory::operator=(RingMemory&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, size_);
    fd_ = std::move(o.fd_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    geometry_ = o.geometry_;
  }
  return *this;
}

RingMemory::~RingMemory() {
  if (base_) ::munmap(base_, size_);
}

RingEnd RingMemory::ring(Direction d) const {
  auto i = static_cast<std::size_t>(d);
  RingEnd e;
  e.slot_count = geometry_.slot_count;
  e.slot_capacity = geometry_.slot_capacity;
  e.slot_stride = ring_slot_stride(geometry_.slot_capacity);
  e.inline_capacity = inline_capacity(geometry_.slot_capacity);
  e.overflow_stride = ring_overflow_stride(geometry_.slot_capacity);
  e.control = base_ + layout::kControlOffset + i * layout::kControlBytes;
  e.slots = base_ + dense_offset(geometry_, i);
  e.overflow = base_ + overflow_offset(geometry_, i);
  return e;
}

void RingMemory::reset() {
  for (std::size_t ring = 0; ring < 2; ++ring) {
    std::uint8_t* control = base_ + layout::kControlOffset + ring * layout::kControlBytes;
    for (std::size_t word : {layout::kProducerIndex, layout::kConsumerIndex, layout::kWakeupFlag}) {
      std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(control + word))
          .store(0, std::memory_order_seq_cst);
    }
  }
}

}  // namespace tw::ipc
