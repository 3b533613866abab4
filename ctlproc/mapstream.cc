#include "ctlproc/mapstream.h"

#include <zstd.h>

namespace tw::ctl {

Result<std::string> zstd_decompress_frame(ByteView frame, std::size_t max_size) {
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return make_error("map stream: not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN)
    return make_error("map stream: zstd frame without a content size");
  if (size > max_size)
    return make_error("map stream: zstd content of " + std::to_string(size) +
                      " bytes over the limit");
  const std::size_t csize = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(csize))
    return make_error(std::string("map stream: zstd: ") + ZSTD_getErrorName(csize));
  if (csize != frame.size()) return make_error("map stream: bytes after the zstd frame");
  std::string out(static_cast<std::size_t>(size), '\0');
  const std::size_t got = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(got))
    return make_error(std::string("map stream: zstd: ") + ZSTD_getErrorName(got));
  if (got != size) return make_error("map stream: zstd frame shorter than its stated size");
  return out;
}

Bytes zstd_compress(ByteView data, int level) {
  Bytes out(ZSTD_compressBound(data.size()));
  const std::size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Status MapFramer::feed(ByteView in, std::vector<std::string>& out) {
  if (!failed_.empty()) return make_error(failed_);
  buf_.insert(buf_.end(), in.begin(), in.end());
  std::size_t pos = 0;
  Status st = ok_status();
  while (buf_.size() - pos >= 4) {
    const std::size_t n = load_le32(&buf_[pos]);
    if (n > kMaxMapMessage) {
      st = make_error("map stream: message of " + std::to_string(n) +
                      " bytes over the 64 MiB limit");
      break;
    }
    if (n == 0) {
      st = make_error("map stream: empty message");
      break;
    }
    if (buf_.size() - pos - 4 < n) break;
    ByteView body(&buf_[pos + 4], n);
    if (zstd_) {
      auto text = zstd_decompress_frame(body, kMaxMapMessage);
      if (!text) {
        st = make_error(text.error());
        break;
      }
      out.push_back(std::move(*text));
    } else {
      out.emplace_back(body.begin(), body.end());
    }
    pos += 4 + n;
  }
  if (!st) {
    failed_ = st.error();
    buf_.clear();
    return st;
  }
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  return ok_status();
}

Bytes frame_map_message(const std::string& json, bool zstd) {
  ByteView raw(reinterpret_cast<const std::uint8_t*>(json.data()), json.size());
  Bytes body = zstd ? zstd_compress(raw) : Bytes(raw.begin(), raw.end());
  Bytes out(4 + body.size());
  store_le32(out.data(), static_cast<std::uint32_t>(body.size()));
  std::copy(body.begin(), body.end(), out.begin() + 4);
  return out;
}

}  // namespace tw::ctl
