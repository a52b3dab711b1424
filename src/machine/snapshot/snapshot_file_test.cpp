#include "machine/snapshot/snapshot_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace nimbus::machine {
namespace {

class SnapshotFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("nimbus-snap-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "vm.snap").string();
    ram_.assign(64 * kSnapshotPageSize, 0);
    // A few non-zero pages, one of them incompressible-ish.
    std::memset(&ram_[3 * kSnapshotPageSize], 0xab, kSnapshotPageSize);
    for (size_t i = 0; i < kSnapshotPageSize; i++)
      ram_[10 * kSnapshotPageSize + i] = static_cast<uint8_t>(i * 7919 >> 3);
    ram_[63 * kSnapshotPageSize + 4095] = 1;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<uint8_t> file_bytes() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  void put_bytes(const std::vector<uint8_t>& b) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  std::string open_error() {
    auto f = SnapshotFile::open(path_);
    return f.ok() ? "" : f.message();
  }

  std::filesystem::path dir_;
  std::string path_;
  std::vector<uint8_t> ram_;
};

TEST_F(SnapshotFileTest, RoundTripSkipsZeroPages) {
  const std::vector<uint8_t> state = {1, 2, 3, 4, 5};
  auto stats = write_snapshot(path_, "{\"vcpus\":1}", state, ram_.data(), ram_.size());
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->pages_stored, 3u);
  EXPECT_EQ(stats->pages_total, 64u);
  EXPECT_LT(stats->file_bytes, 3 * kSnapshotPageSize);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));

  auto f = SnapshotFile::open(path_);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ((*f)->config_json(), "{\"vcpus\":1}");
  EXPECT_EQ((*f)->state(), state);
  EXPECT_EQ((*f)->ram_size(), ram_.size());
  std::vector<uint8_t> ram(ram_.size(), 0);
  ASSERT_TRUE((*f)->read_ram(ram.data()).ok());
  EXPECT_EQ(ram, ram_);
}

TEST_F(SnapshotFileTest, AllZeroRam) {
  std::vector<uint8_t> zeros(16 * kSnapshotPageSize, 0);
  ASSERT_TRUE(write_snapshot(path_, "{}", {}, zeros.data(), zeros.size()).ok());
  auto f = SnapshotFile::open(path_);
  ASSERT_TRUE(f.ok()) << f.message();
  std::vector<uint8_t> ram(zeros.size(), 0);
  EXPECT_TRUE((*f)->read_ram(ram.data()).ok());
}

TEST_F(SnapshotFileTest, EveryFlippedByteIsDetected) {
  ASSERT_TRUE(write_snapshot(path_, "{}", {9, 9}, ram_.data(), ram_.size()).ok());
  const std::vector<uint8_t> good = file_bytes();
  for (size_t i = 0; i < good.size(); i += 7) {
    if (i >= 28 && i < 32) continue;  // the reserved word is not covered
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x40;
    put_bytes(bad);
    auto f = SnapshotFile::open(path_);
    EXPECT_FALSE(f.ok()) << "flip at byte " << i << " was accepted";
  }
}

TEST_F(SnapshotFileTest, RefusesTruncatedWrongVersionAndForeignFiles) {
  ASSERT_TRUE(write_snapshot(path_, "{}", {1}, ram_.data(), ram_.size()).ok());
  std::vector<uint8_t> good = file_bytes();

  std::vector<uint8_t> cut(good.begin(), good.end() - 10);
  put_bytes(cut);
  EXPECT_NE(open_error().find("truncated"), std::string::npos) << open_error();

  std::vector<uint8_t> v2 = good;
  v2[8] = 2;
  put_bytes(v2);
  EXPECT_NE(open_error().find("format version 2"), std::string::npos) << open_error();

  put_bytes({'h', 'e', 'l', 'l', 'o'});
  EXPECT_NE(open_error().find("not a Nimbus snapshot"), std::string::npos);
  std::vector<uint8_t> elf(100, 0);
  std::memcpy(elf.data(),
              "\x7f"
              "ELF",
              4);
  put_bytes(elf);
  EXPECT_NE(open_error().find("bad magic"), std::string::npos);

  std::filesystem::remove(path_);
  EXPECT_NE(open_error().find("cannot be read"), std::string::npos);
}

TEST_F(SnapshotFileTest, UnwritableDirectoryIsAnError) {
  auto r = write_snapshot("/nonexistent-dir/x.snap", "{}", {}, ram_.data(), ram_.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("/nonexistent-dir/x.snap"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::machine
