#include "backends/block/raw_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace nimbus::backends {
namespace {

class RawFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_raw_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/disk.raw";
    std::filesystem::resize_file(make_file(), 1 << 20);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string make_file() {
    std::ofstream(path_).put('\0');
    return path_;
  }
  std::string dir_, path_;
};

TEST_F(RawFileTest, WriteReadRoundTripAndReopen) {
  auto disk = RawFile::open(path_, false);
  ASSERT_TRUE(disk.ok()) << disk.message();
  EXPECT_EQ((*disk)->size(), 1u << 20);
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE((*disk)->write(4000, data.data(), data.size()).ok());
  ASSERT_TRUE((*disk)->flush().ok());
  (*disk).reset();  // its writer's lock would keep the reader out
  disk = RawFile::open(path_, true);
  ASSERT_TRUE(disk.ok());
  EXPECT_TRUE((*disk)->read_only());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE((*disk)->read(4000, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
}

// A host write error (here EFBIG from RLIMIT_FSIZE, standing in for ENOSPC) is an error
// Status, and flushed data stays intact.
TEST_F(RawFileTest, HostWriteErrorIsAStatus) {
  auto disk = RawFile::open(path_, false);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> data(4096, 0x11);
  ASSERT_TRUE((*disk)->write(0, data.data(), data.size()).ok());
  ASSERT_TRUE((*disk)->flush().ok());
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit old_limit {};
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 512 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  Status s = (*disk)->write(600 << 10, data.data(), data.size());
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("write error"), std::string::npos);
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE((*disk)->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
}

TEST_F(RawFileTest, SparseRegionsReadAsZeros) {
  auto disk = RawFile::open(path_, true);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> buf(4096, 0xff);
  ASSERT_TRUE((*disk)->read((1 << 20) - 4096, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(4096, 0));
}

TEST_F(RawFileTest, FileShrunkUnderneathReadsZeros) {
  auto disk = RawFile::open(path_, true);
  ASSERT_TRUE(disk.ok());
  ASSERT_EQ(::truncate(path_.c_str(), 1000), 0);
  std::vector<uint8_t> buf(4096, 0xff);
  ASSERT_TRUE((*disk)->read(0, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(4096, 0));
}

TEST_F(RawFileTest, AccessPastEndIsAnError) {
  auto disk = RawFile::open(path_, false);
  ASSERT_TRUE(disk.ok());
  uint8_t b[2] = {};
  EXPECT_FALSE((*disk)->read((1 << 20) - 1, b, 2).ok());
  EXPECT_FALSE((*disk)->write(1 << 20, b, 1).ok());
  EXPECT_FALSE((*disk)->read(~0ull, b, 2).ok());
  EXPECT_TRUE((*disk)->read((1 << 20) - 1, b, 1).ok());
}

TEST_F(RawFileTest, ReadOnlyRefusesWrites) {
  auto disk = RawFile::open(path_, true);
  ASSERT_TRUE(disk.ok());
  uint8_t b = 1;
  Status s = (*disk)->write(0, &b, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("read-only"), std::string::npos);
  EXPECT_FALSE((*disk)->discard(0, 4096).ok());
}

TEST_F(RawFileTest, DiscardReadsZerosOrOldData) {
  auto disk = RawFile::open(path_, false);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> data(65536, 0x5a);
  ASSERT_TRUE((*disk)->write(0, data.data(), data.size()).ok());
  ASSERT_TRUE((*disk)->discard(0, 65536).ok());
  std::vector<uint8_t> back(65536);
  ASSERT_TRUE((*disk)->read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == data || back == std::vector<uint8_t>(65536, 0));
}

TEST_F(RawFileTest, MissingFileNamesThePath) {
  auto disk = RawFile::open(dir_ + "/nope.raw", true);
  ASSERT_FALSE(disk.ok());
  EXPECT_NE(disk.message().find("nope.raw"), std::string::npos);
  auto dir = RawFile::open(dir_, true);
  EXPECT_FALSE(dir.ok());
}

}  // namespace
}  // namespace nimbus::backends
