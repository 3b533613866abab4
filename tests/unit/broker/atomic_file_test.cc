// The endpoints file's writer: readers see the old or the new file, never part of
// one; the mode is what we ask regardless of umask; nothing is left behind.
#include "broker/atomic_file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

namespace tw::broker {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tw-atomic-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/endpoints.json";
  }
  void TearDown() override { (void)!::system(("rm -rf " + dir_).c_str()); }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir_.c_str());
    while (auto* e = ::readdir(d)) {
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    }
    ::closedir(d);
    return out;
  }
  std::string dir_, path_;
};

TEST_F(AtomicFileTest, CreatesThenReplacesWithTheRequestedModeAndNoLeftovers) {
  const mode_t old_umask = ::umask(077);
  ASSERT_TRUE(replace_file_atomically(path_, "{\"endpoints\":[]}\n", 0644).ok());
  ASSERT_TRUE(replace_file_atomically(path_, "{\"endpoints\":[\"198.18.0.2:41641\"]}\n", 0644).ok());
  ::umask(old_umask);
  EXPECT_EQ(slurp(path_), "{\"endpoints\":[\"198.18.0.2:41641\"]}\n");
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(entries(), std::vector<std::string>{"endpoints.json"}) << "temporary files left behind";
}

TEST_F(AtomicFileTest, MissingDirectoryIsAnErrorNamingThePath) {
  auto st = replace_file_atomically(dir_ + "/gone/endpoints.json", "x", 0644);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find(dir_ + "/gone/endpoints.json"), std::string::npos) << st.error();
}

// A reader polling the file while it is replaced hundreds of times with contents of
// different sizes must only ever see one complete version: it starts with the
// version's header and has exactly that version's length and trailer.
TEST_F(AtomicFileTest, ConcurrentReaderNeverSeesAPartialFile) {
  auto version = [](int n) {
    const std::string body(1000 + (n % 7) * 20000, static_cast<char>('a' + n % 26));
    return "BEGIN " + std::to_string(n) + " " + std::to_string(body.size()) + "\n" + body + "\nEND " +
           std::to_string(n) + "\n";
  };
  ASSERT_TRUE(replace_file_atomically(path_, version(0), 0644).ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::string first_bad;
  std::thread reader([&] {
    while (!done.load()) {
      const std::string got = slurp(path_);
      int n = -1;
      std::size_t len = 0;
      if (std::sscanf(got.c_str(), "BEGIN %d %zu", &n, &len) != 2 || n < 0 || got != version(n)) {
        if (bad.fetch_add(1) == 0) first_bad = got.substr(0, 40) + "... (" + std::to_string(got.size()) + " bytes)";
      }
      reads.fetch_add(1);
    }
  });
  for (int i = 1; i <= 300; ++i) ASSERT_TRUE(replace_file_atomically(path_, version(i), 0644).ok());
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << "partial file seen: " << first_bad;
  EXPECT_GT(reads.load(), 100) << "the reader barely ran; the test proved little";
  EXPECT_EQ(slurp(path_), version(300));
}

TEST_F(AtomicFileTest, BoundedReadRefusesFifosDevicesSymlinksAndOversizeFiles) {
  // A FIFO with no writer: a plain open would block the broker's loop forever.
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = read_regular_file_bounded(fifo, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("not a regular file"), std::string::npos) << r.error();
  // An endless device.
  r = read_regular_file_bounded("/dev/zero", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("not a regular file"), std::string::npos) << r.error();
  // A symlink (to a root-only file, say) is not followed.
  const std::string target = dir_ + "/target";
  ASSERT_TRUE(replace_file_atomically(target, "{}", 0600).ok());
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_FALSE(read_regular_file_bounded(link, 1 << 20).ok());
  // Over the cap: refused before reading.
  ASSERT_TRUE(replace_file_atomically(target, std::string(2000, 'x'), 0600).ok());
  r = read_regular_file_bounded(target, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("more than the limit"), std::string::npos) << r.error();
  // Within it: the content.
  r = read_regular_file_bounded(target, 2000);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->size(), 2000u);
}

}  // namespace
}  // namespace tw::broker
