#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/keyfile.h"
#include "common/keys.h"

namespace tw {
namespace {

class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override { crypto_init(); }
};

TEST_F(KeysTest, DerivedPublicKeysMatchGoVectors) {
  // Go's vectors: 22..22 -> 0faa684e...570f20; 2021..3f -> 358072d6...166254.
  KeyBytes k22;
  k22.fill(0x22);
  auto pub = DiscoPrivate(k22).public_key().hex();
  EXPECT_EQ(pub.substr(0, 8), "0faa684e");
  EXPECT_EQ(pub.substr(58), "570f20");
  KeyBytes k20;
  for (int i = 0; i < 32; ++i) k20[i] = static_cast<std::uint8_t>(0x20 + i);
  pub = DiscoPrivate(k20).public_key().hex();
  EXPECT_EQ(pub.substr(0, 8), "358072d6");
  EXPECT_EQ(pub.substr(58), "166254");
}

TEST_F(KeysTest, DerpHandshakeVectorPublicKeys) {
  // Go's DERP handshake vector: 44x32 and 55x32.
  KeyBytes k;
  k.fill(0x44);
  EXPECT_EQ(NodePrivate(k).public_key().hex(),
            "ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b");
  k.fill(0x55);
  EXPECT_EQ(NodePrivate(k).public_key().hex(),
            "38ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67");
}

TEST_F(KeysTest, TextFormsRoundTrip) {
  auto priv = NodePrivate::generate();
  auto pub = priv.public_key();
  EXPECT_EQ(pub.to_string().substr(0, 8), "nodekey:");
  EXPECT_EQ(pub.to_string().size(), 8u + 64u);
  auto back = NodePublic::parse(pub.to_string());
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, pub);
  auto pback = NodePrivate::parse(priv.to_string());
  ASSERT_TRUE(pback.ok());
  EXPECT_EQ(pback->public_key(), pub);
  auto d = DiscoPrivate::generate();
  EXPECT_EQ(d.public_key().to_string().substr(0, 9), "discokey:");
  EXPECT_EQ(d.to_string().substr(0, 13), "discoprivkey:");
}

TEST_F(KeysTest, GeneratedPrivateKeysAreClamped) {
  auto k = NodePrivate::generate().bytes();
  EXPECT_EQ(k[0] & 7, 0);
  EXPECT_EQ(k[31] & 0x80, 0);
  EXPECT_EQ(k[31] & 0x40, 0x40);
}

TEST_F(KeysTest, ParseErrorsArePrecise) {
  auto r = NodePublic::parse("discokey:" + std::string(64, 'a'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("expected prefix \"nodekey:\""), std::string::npos) << r.error();
  r = NodePublic::parse("nodekey:abcd");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("got 4"), std::string::npos) << r.error();
  r = NodePublic::parse("nodekey:" + std::string(63, 'a') + "g");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("not hexadecimal"), std::string::npos) << r.error();
  // A node private key can never be read as a disco private key.
  auto n = NodePrivate::generate();
  EXPECT_FALSE(DiscoPrivate::parse(n.to_string()).ok());
}

TEST_F(KeysTest, PrivateKeyDestructorWipesBytes) {
  alignas(NodePrivate) unsigned char storage[sizeof(NodePrivate)];
  auto* k = new (storage) NodePrivate(NodePrivate::generate());
  ASSERT_FALSE(k->is_zero());
  k->~NodePrivate();
  for (unsigned char c : storage) ASSERT_EQ(c, 0);
}

class KeyFileTest : public KeysTest {
 protected:
  void SetUp() override {
    KeysTest::SetUp();
    char tmpl[] = "/tmp/tw-keyfile-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/keys";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_, path_;
};

TEST_F(KeyFileTest, WrittenFileIs0600AndLoadsBack) {
  auto keys = generate_node_keys();
  ASSERT_TRUE(write_key_file(path_, keys, false).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = load_key_file(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->node.public_key(), keys.node.public_key());
  EXPECT_EQ(loaded->disco.public_key(), keys.disco.public_key());
  ASSERT_TRUE(keys.machine.has_value());
  ASSERT_TRUE(loaded->machine.has_value()) << "keygen writes the control machine key";
  EXPECT_EQ(loaded->machine->public_key(), keys.machine->public_key());
  EXPECT_EQ(loaded->machine->public_key().to_string().rfind("mkey:", 0), 0u);
  EXPECT_FALSE(write_key_file(path_, keys, false).ok()) << "must not overwrite";
}

TEST_F(KeyFileTest, GroupOrWorldReadableFileIsRefused) {
  ASSERT_TRUE(write_key_file(path_, generate_node_keys(), false).ok());
  ASSERT_EQ(::chmod(path_.c_str(), 0640), 0);
  auto r = load_key_file(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("mode 0640"), std::string::npos) << r.error();
  ASSERT_EQ(::chmod(path_.c_str(), 0604), 0);
  EXPECT_FALSE(load_key_file(path_).ok());
}

TEST_F(KeyFileTest, FileOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  ASSERT_TRUE(write_key_file(path_, generate_node_keys(), false).ok());
  ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);
  auto r = load_key_file(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("owned by uid 65534"), std::string::npos) << r.error();
}

TEST_F(KeyFileTest, KeyFileErrorsNameLineAndField) {
  auto keys = generate_node_keys();
  std::string text = key_file_text(keys) + "colour = \"blue\"\n";
  auto r = parse_key_file_text(text, "k.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("k.toml:5: unknown key \"colour\""), std::string::npos) << r.error();
  r = parse_key_file_text("node_private = \"privkey:12\"\n", "k.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("k.toml:1: node_private"), std::string::npos) << r.error();
  r = parse_key_file_text("node_private = \"" + keys.node.to_string() + "\"\n", "k.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("missing disco_private"), std::string::npos);
  // A key file from before the control client still loads, without a machine key.
  r = parse_key_file_text("node_private = \"" + keys.node.to_string() + "\"\ndisco_private = \"" +
                              keys.disco.to_string() + "\"\n",
                          "k.toml");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(r->machine.has_value());
  r = parse_key_file_text(key_file_text(keys) + "", "k.toml");
  ASSERT_TRUE(r.ok());
  r = parse_key_file_text("machine_private = \"mkey:00\"\n", "k.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("k.toml:1: machine_private"), std::string::npos) << r.error();
  r = parse_key_file_text("node_private = [", "k.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("k.toml:1"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace tw
