#include "ctlproc/mapstream.h"

#include <gtest/gtest.h>
#include <zstd.h>

namespace tw::ctl {
namespace {

TEST(MapStreamTest, LittleEndianFramesRawAndZstdSplitAnywhere) {
  const std::string a = R"({"KeepAlive":true})";
  const std::string b = std::string(R"({"Domain":")") + std::string(5000, 'x') + "\"}";
  for (bool z : {false, true}) {
    Bytes wire = frame_map_message(a, z);
    Bytes wb = frame_map_message(b, z);
    wire.insert(wire.end(), wb.begin(), wb.end());
    if (!z) {
      EXPECT_EQ(load_le32(wire.data()), a.size());  // little-endian length
      EXPECT_EQ(wire[0], a.size());
    }
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, wire.size()}) {
      MapFramer f(z);
      std::vector<std::string> got;
      for (std::size_t i = 0; i < wire.size(); i += chunk) {
        ASSERT_TRUE(f.feed(ByteView(wire).subspan(i, std::min(chunk, wire.size() - i)), got).ok());
      }
      ASSERT_EQ(got.size(), 2u);
      EXPECT_EQ(got[0], a);
      EXPECT_EQ(got[1], b);
      EXPECT_EQ(f.buffered(), 0u);
    }
  }
}

TEST(MapStreamTest, OversizedAndEmptyMessagesAreRefused) {
  std::vector<std::string> got;
  MapFramer f(false);
  Bytes huge = {0, 0, 0, 0x05};  // 80 MiB
  auto st = f.feed(huge, got);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("64 MiB"), std::string::npos);
  EXPECT_FALSE(f.feed(frame_map_message("{}", false), got).ok()) << "stays failed";
  MapFramer g(false);
  EXPECT_FALSE(g.feed(Bytes{0, 0, 0, 0}, got).ok());
}

TEST(MapStreamTest, ZstdFramesMustStateTheirSizeAndStandAlone) {
  const std::string text = "{\"KeepAlive\":true}";
  // A streaming-compressed frame has no content size.
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  Bytes out(256);
  ZSTD_inBuffer in{text.data(), text.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  ZSTD_compressStream2(c, &ob, &in, ZSTD_e_end);
  ZSTD_freeCCtx(c);
  out.resize(ob.pos);
  auto r = zstd_decompress_frame(out, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("content size"), std::string::npos);
  // Trailing garbage after a valid frame.
  Bytes good =
      zstd_compress(ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  ASSERT_TRUE(zstd_decompress_frame(good, 1 << 20).ok());
  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(zstd_decompress_frame(trailing, 1 << 20).ok());
  // Over the cap.
  EXPECT_FALSE(zstd_decompress_frame(good, 4).ok());
  // Not zstd at all, through the framer.
  MapFramer f(true);
  std::vector<std::string> got;
  EXPECT_FALSE(f.feed(frame_map_message(text, false), got).ok());
}

}  // namespace
}  // namespace tw::ctl
