#include "backends/block/disk_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backends/block/block_backend.h"
#include "backends/block/disk_resize.h"
#include "backends/block/qcow2.h"
#include "backends/block/raw_file.h"

namespace nimbus::backends {
namespace {

// Issue 23, defect 3: two writers must never have the same image open.
class DiskLockTest : public ::testing::TestWithParam<DiskFormat> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_lock_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + (GetParam() == DiskFormat::kQcow2 ? "/disk.qcow2" : "/disk.raw");
    if (GetParam() == DiskFormat::kQcow2) {
      ASSERT_TRUE(create_qcow2(path_, 1 << 20).ok());
    } else {
      std::ofstream(path_).put('\0');
      std::filesystem::resize_file(path_, 1 << 20);
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::unique_ptr<BlockBackend>> open(bool read_only) const {
    DiskOptions options;
    options.path = path_;
    options.read_only = read_only;
    return open_disk(options);
  }
  std::string open_error(bool read_only) const {
    auto disk = open(read_only);
    return disk.ok() ? std::string() : disk.message();
  }
  // A child process that opens the image and holds it until killed.
  pid_t hold_in_child(bool read_only) const {
    int p[2];
    if (::pipe(p) != 0) return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      auto disk = open(read_only);
      char c = disk.ok() ? 'y' : 'n';
      (void)!::write(p[1], &c, 1);
      for (;;) ::pause();
    }
    ::close(p[1]);
    char c = 0;
    bool ok = ::read(p[0], &c, 1) == 1 && c == 'y';
    ::close(p[0]);
    if (!ok) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return -1;
    }
    return pid;
  }
  static void kill_child(pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }

  std::string dir_, path_;
};

TEST_P(DiskLockTest, SecondWriterIsRefused) {
  auto first = open(false);
  ASSERT_TRUE(first.ok()) << first.message();
  std::string e = open_error(false);
  EXPECT_EQ(
      e, fmt::format("disk image '{}' is in use by another process (locked for writing)", path_));
  // A reader neither: the writer does not share a consistent view.
  EXPECT_NE(open_error(true).find("in use by another process (locked for writing)"),
            std::string::npos);
  (*first).reset();
  EXPECT_EQ(open_error(false), "");
}

TEST_P(DiskLockTest, ReadersShareButExcludeAWriter) {
  auto a = open(true);
  ASSERT_TRUE(a.ok()) << a.message();
  auto b = open(true);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_NE(open_error(false).find("in use by another process (locked for reading)"),
            std::string::npos);
  (*a).reset();
  EXPECT_NE(open_error(false).find("locked for reading"), std::string::npos);
  (*b).reset();
  EXPECT_EQ(open_error(false), "");
}

// OFD locks belong to the open file description, not the process: another thread of the
// same process is refused too (classic POSIX locks would let it through).
TEST_P(DiskLockTest, AnotherThreadIsRefused) {
  auto first = open(false);
  ASSERT_TRUE(first.ok());
  std::string e;
  std::thread([&] { e = open_error(false); }).join();
  EXPECT_NE(e.find("in use by another process"), std::string::npos) << e;
}

// The kernel drops the locks of a killed holder: kill -9 leaves no stale lock behind.
TEST_P(DiskLockTest, KilledHolderFreesTheImage) {
  for (bool child_read_only : {false, true}) {
    pid_t pid = hold_in_child(child_read_only);
    ASSERT_GT(pid, 0);
    EXPECT_NE(open_error(false).find("in use by another process"), std::string::npos);
    EXPECT_EQ(open_error(true).empty(), child_read_only);
    kill_child(pid);
    EXPECT_EQ(open_error(false), "");
  }
}

// What `nimbus image resize` and the API's drive resize do: not under a running VM.
TEST_P(DiskLockTest, ResizeOfAnImageInUseIsRefused) {
  auto first = open(true);
  ASSERT_TRUE(first.ok());
  Status s = resize_disk(path_, 2 << 20);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("in use by another process"), std::string::npos) << s.message();
  (*first).reset();
  EXPECT_TRUE(resize_disk(path_, 2 << 20).ok());
}

INSTANTIATE_TEST_SUITE_P(Formats, DiskLockTest,
                         ::testing::Values(DiskFormat::kRaw, DiskFormat::kQcow2),
                         [](const auto& info) {
                           return info.param == DiskFormat::kRaw ? "Raw" : "Qcow2";
                         });

class DiskLockChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_lock_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// A backing file is read-shared: overlays of one base run side by side, and nobody may
// write the base under them.
TEST_F(DiskLockChainTest, BackingFilesAreSharedReadLocked) {
  ASSERT_TRUE(create_qcow2(path("base.qcow2"), 1 << 20).ok());
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 0, 65536, "base.qcow2").ok());
  ASSERT_TRUE(create_qcow2(path("b.qcow2"), 0, 65536, "base.qcow2").ok());
  auto a = Qcow2Image::open(path("a.qcow2"), false);
  ASSERT_TRUE(a.ok()) << a.message();
  auto b = Qcow2Image::open(path("b.qcow2"), false);
  ASSERT_TRUE(b.ok()) << b.message();
  auto base = Qcow2Image::open(path("base.qcow2"), false);
  ASSERT_FALSE(base.ok());
  EXPECT_NE(base.message().find("locked for reading"), std::string::npos) << base.message();
  EXPECT_TRUE(Qcow2Image::open(path("base.qcow2"), true).ok());
}

// Creating an image over one in use would truncate it under its writer.
TEST_F(DiskLockChainTest, CreateOverAnImageInUseIsRefusedAndLeavesItAlone) {
  ASSERT_TRUE(create_qcow2(path("disk.qcow2"), 1 << 20).ok());
  auto disk = Qcow2Image::open(path("disk.qcow2"), false);
  ASSERT_TRUE(disk.ok());
  uint8_t b = 7;
  ASSERT_TRUE((*disk)->write(0, &b, 1).ok());
  const auto size = std::filesystem::file_size(path("disk.qcow2"));
  Status s = create_qcow2(path("disk.qcow2"), 2 << 20);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("in use by another process"), std::string::npos) << s.message();
  EXPECT_EQ(std::filesystem::file_size(path("disk.qcow2")), size);
  b = 0;
  ASSERT_TRUE((*disk)->read(0, &b, 1).ok());
  EXPECT_EQ(b, 7);
}

}  // namespace
}  // namespace nimbus::backends
