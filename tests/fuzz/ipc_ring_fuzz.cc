// Fuzz target: a hostile peer writes arbitrary indices, lengths and peer ids into
// the shared ring memory between our pops and pushes. Under ASan, any read or write
// outside the mapping or the batch aborts; delivered packets must fit the slot.
// The producer side is driven too, by pushes and by in-place reserve/fill/commit.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ipc/ring.h"
#include "ipc/ring_layout.h"
#include "ipc/ring_memory.h"

namespace {

struct Rings {
  tw::ipc::RingMemory memory;
  explicit Rings(tw::ipc::RingMemory m) : memory(std::move(m)) {}
};

Rings& rings() {
  static Rings r(tw::ipc::RingMemory::create(tw::ipc::RingGeometry{8, 4096}).value());
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::ipc;
  Rings& r = rings();
  r.memory.reset();
  RingEnd end = r.memory.ring(Direction::kNetToData);
  RingProducer tx(end, -1);
  RingConsumer rx(end);
  PacketBatch batch(4096);
  static std::uint8_t payload[4200] = {};
  // Each 9-byte record: op, then a u32 and a u32 to scribble or to push.
  for (std::size_t i = 0; i + 9 <= size; i += 9) {
    std::uint8_t op = data[i];
    std::uint32_t a, b;
    std::memcpy(&a, data + i + 1, 4);
    std::memcpy(&b, data + i + 5, 4);
    std::uint8_t* slot = end.slots + (a % end.slot_count) * end.slot_stride;
    switch (op % 9) {
      case 0: std::memcpy(end.control + layout::kProducerIndex, &a, 4); break;
      case 1: std::memcpy(end.control + layout::kConsumerIndex, &a, 4); break;
      case 2: std::memcpy(slot + layout::kSlotLength, &b, 4); break;
      case 3: {
        OutPacket p{b, tw::ByteView(payload, a % sizeof payload)};
        (void)tx.push(std::span(&p, 1));
        break;
      }
      case 4:
        rx.pop(batch);
        for (std::size_t k = 0; k < batch.size(); ++k) {
          if (batch.data(k).size() > 4096) std::abort();
        }
        break;
      case 5: (void)rx.prepare_to_sleep(); rx.woke(); break;
      // In-place filling: reserve, write through the areas (as recvmmsg would, up
      // to their full size), fill with any length, commit any count.
      case 6: {
        std::size_t n = tx.reserve(a % 80);
        for (std::size_t k = 0; k < n; ++k) {
          SlotArea area = tx.area(k);
          std::memset(area.head, static_cast<int>(b), area.head_len);
          if (area.rest_len) std::memset(area.rest, static_cast<int>(b), area.rest_len);
        }
        break;
      }
      case 7: tx.fill(a % 80, b, b % 5000); break;
      case 8: tx.commit(a % 80); break;
    }
  }
  return 0;
}
