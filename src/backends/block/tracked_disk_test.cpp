#include "backends/block/tracked_disk.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "backends/block/qcow2.h"
#include "backends/block/raw_file.h"

namespace nimbus::backends {
namespace {

using Extents = std::vector<std::pair<uint64_t, uint64_t>>;

class TrackedDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_tracked_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

constexpr uint64_t kMiB = 1 << 20;

TEST_F(TrackedDiskTest, MarksWrittenChunksOnlyWhileTracking) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 8 * kMiB).ok());
  auto image = Qcow2Image::open(path("a.qcow2"), false);
  ASSERT_TRUE(image.ok()) << image.message();
  TrackedDisk disk(std::move(*image));
  std::vector<uint8_t> data(4096, 0xab);
  ASSERT_TRUE(disk.write(0, data.data(), data.size()).ok());  // before tracking: not marked
  disk.start_tracking();
  EXPECT_TRUE(disk.take_dirty().empty());
  // One write inside chunk 3, one across chunks 5 and 6, a discard of chunk 10.
  ASSERT_TRUE(disk.write(3 * TrackedDisk::kChunk + 100, data.data(), 100).ok());
  ASSERT_TRUE(disk.write(6 * TrackedDisk::kChunk - 10, data.data(), 20).ok());
  ASSERT_TRUE(disk.discard(10 * TrackedDisk::kChunk, TrackedDisk::kChunk).ok());
  EXPECT_EQ(disk.take_dirty(), (std::vector<uint64_t>{3, 5, 6, 10}));
  EXPECT_TRUE(disk.take_dirty().empty());  // taken means cleared
  ASSERT_TRUE(disk.write(8 * kMiB - 1, data.data(), 1).ok());
  EXPECT_EQ(disk.take_dirty(), (std::vector<uint64_t>{8 * kMiB / TrackedDisk::kChunk - 1}));
  disk.stop_tracking();
  ASSERT_TRUE(disk.write(0, data.data(), 10).ok());
  EXPECT_TRUE(disk.take_dirty().empty());
  // Reads pass through.
  std::vector<uint8_t> back(100);
  ASSERT_TRUE(disk.read(3 * TrackedDisk::kChunk + 100, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(100, 0xab));
}

TEST_F(TrackedDiskTest, Qcow2OwnExtentsAreTheOverlaysClustersOnly) {
  // A backing file with data everywhere; the overlay holds two written clusters and a
  // discarded one (a zero cluster hiding the backing's data: also its own).
  ASSERT_TRUE(create_qcow2(path("base.qcow2"), 4 * kMiB).ok());
  {
    auto base = Qcow2Image::open(path("base.qcow2"), false);
    ASSERT_TRUE(base.ok());
    std::vector<uint8_t> all(4 * kMiB, 7);
    ASSERT_TRUE((*base)->write(0, all.data(), all.size()).ok());
  }
  ASSERT_TRUE(create_qcow2(path("top.qcow2"), 0, 65536, "base.qcow2").ok());
  auto top = Qcow2Image::open(path("top.qcow2"), false);
  ASSERT_TRUE(top.ok()) << top.message();
  auto none = (*top)->own_extents();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  std::vector<uint8_t> data(10, 1);
  ASSERT_TRUE((*top)->write(65536 * 2 + 5, data.data(), data.size()).ok());
  ASSERT_TRUE((*top)->write(65536 * 3, data.data(), data.size()).ok());
  // Written, then discarded: a zero cluster now, which hides the backing's 7s.
  ASSERT_TRUE((*top)->write(65536 * 40, data.data(), data.size()).ok());
  ASSERT_TRUE((*top)->discard(65536 * 40, 65536).ok());
  std::vector<uint8_t> back(10);
  ASSERT_TRUE((*top)->read(65536 * 40, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(10, 0));
  auto own = (*top)->own_extents();
  ASSERT_TRUE(own.ok()) << own.message();
  EXPECT_EQ(*own, (Extents{{65536 * 2, 65536 * 2}, {65536 * 40, 65536}}));
}

TEST_F(TrackedDiskTest, RawOwnExtentsSkipHoles) {
  { std::ofstream f(path("d.raw")); }
  std::filesystem::resize_file(path("d.raw"), 8 * kMiB);
  auto raw = RawFile::open(path("d.raw"), false);
  ASSERT_TRUE(raw.ok());
  std::vector<uint8_t> data(4096, 3);
  ASSERT_TRUE((*raw)->write(4 * kMiB, data.data(), data.size()).ok());
  auto own = (*raw)->own_extents();
  ASSERT_TRUE(own.ok());
  // Whatever the file system's granularity, the written page is covered and most of the
  // file is not (tmpfs and ext4 both report holes).
  uint64_t covered = 0;
  bool has_page = false;
  for (auto [off, len] : *own) {
    covered += len;
    if (off <= 4 * kMiB && off + len >= 4 * kMiB + 4096) has_page = true;
  }
  EXPECT_TRUE(has_page);
  EXPECT_LT(covered, 8 * kMiB);
}

}  // namespace
}  // namespace nimbus::backends
