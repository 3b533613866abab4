// The body of a /machine/map response: messages of u32 LITTLE-endian length followed
// by that many bytes, each a single zstd frame when the request asked for
// Compress:"zstd", else raw JSON. Sizes are capped before any allocation.
#pragma once

#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/netmap.h"
#include "common/result.h"

namespace tw::ctl {

constexpr std::size_t kMaxMapMessage = kMaxNetmapBytes;  // compressed and decompressed

// Decompresses exactly one zstd frame whose header states its content size.
Result<std::string> zstd_decompress_frame(ByteView frame, std::size_t max_size);
// The inverse (tests and the fuzz corpus).
Bytes zstd_compress(ByteView data, int level = 3);

class MapFramer {
 public:
  explicit MapFramer(bool zstd) : zstd_(zstd) {}
  // Appends every complete message (decompressed) to `out`. After an error the framer
  // stays failed.
  Status feed(ByteView in, std::vector<std::string>& out);
  std::size_t buffered() const { return buf_.size(); }

 private:
  bool zstd_;
  Bytes buf_;
  std::string failed_;
};

// Frames one message as a server would (tests).
Bytes frame_map_message(const std::string& json, bool zstd);

}  // namespace tw::ctl
