#include "machine/virt/boot_image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mem/bus.h"

namespace nimbus::machine::virt {
namespace {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 16ull << 20;

// A RISC-V Linux Image: text_offset 2 MiB, image_size `image_size`, magic2 at 56, then
// `payload` bytes of a counting pattern.
std::vector<uint8_t> fake_image(size_t payload, uint64_t image_size = 0) {
  std::vector<uint8_t> b(64 + payload);
  const uint64_t text_offset = 2ull << 20;
  std::memcpy(b.data() + 8, &text_offset, 8);
  std::memcpy(b.data() + 16, &image_size, 8);
  std::memcpy(b.data() + 56, "RSC\x05", 4);
  for (size_t i = 64; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 7);
  return b;
}

class BootImageTest : public ::testing::Test {
 protected:
  std::string write_temp(const std::vector<uint8_t>& bytes) {
    char path[] = "/tmp/nimbus_boot_image_XXXXXX";
    const int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    paths_.push_back(path);
    return path;
  }
  ~BootImageTest() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }

  mem::Bus bus_{kRamBase, kRamSize};
  std::vector<std::string> paths_;
};

TEST_F(BootImageTest, LoadsKernelAndInitrdIntoRam) {
  const std::vector<uint8_t> kernel = fake_image(300000, 1 << 20);
  std::vector<uint8_t> initrd(123457);
  for (size_t i = 0; i < initrd.size(); i++) initrd[i] = static_cast<uint8_t>(i ^ (i >> 8));
  BootFiles files;
  files.kernel = write_temp(kernel);
  files.initrd = write_temp(initrd);

  auto layout = load_boot_files(files, bus_);
  ASSERT_TRUE(layout.ok()) << layout.message();
  EXPECT_EQ(layout->kernel_entry, kRamBase + (2 << 20));
  EXPECT_EQ(layout->kernel_end, kRamBase + (2 << 20) + (1 << 20));
  EXPECT_EQ(std::memcmp(bus_.ram_ptr(layout->kernel_entry, kernel.size()), kernel.data(), kernel.size()), 0);
  EXPECT_EQ(layout->initrd_start % 4096, 0u);
  EXPECT_EQ(layout->initrd_end - layout->initrd_start, initrd.size());
  EXPECT_LE(layout->initrd_end, kRamBase + kRamSize - (2 << 20));
  EXPECT_EQ(std::memcmp(bus_.ram_ptr(layout->initrd_start, initrd.size()), initrd.data(), initrd.size()), 0);
}

TEST_F(BootImageTest, KernelLargerThanItsHeaderSizeCountsItsFileSize) {
  const std::vector<uint8_t> kernel = fake_image(200000, 4096);
  BootFiles files;
  files.kernel = write_temp(kernel);
  auto layout = load_boot_files(files, bus_);
  ASSERT_TRUE(layout.ok()) << layout.message();
  EXPECT_EQ(layout->kernel_end, layout->kernel_entry + kernel.size());
}

TEST_F(BootImageTest, ReadsFilesThatCannotBeSizedUpFront) {
  // A pipe (as with --initrd <(zcat ...)): read whole, then copied.
  const std::vector<uint8_t> kernel = fake_image(100000);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    size_t off = 0;
    while (off < kernel.size()) {
      const ssize_t n = ::write(fds[1], kernel.data() + off, kernel.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fds[1]);
  });
  BootFiles files;
  files.kernel = "/dev/fd/" + std::to_string(fds[0]);
  auto layout = load_boot_files(files, bus_);
  writer.join();
  ::close(fds[0]);
  ASSERT_TRUE(layout.ok()) << layout.message();
  EXPECT_EQ(std::memcmp(bus_.ram_ptr(layout->kernel_entry, kernel.size()), kernel.data(), kernel.size()), 0);
}

TEST_F(BootImageTest, ErrorsNameTheFileAndTheProblem) {
  BootFiles files;
  files.kernel = "/nonexistent/Image";
  auto missing = load_boot_files(files, bus_);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot open kernel '/nonexistent/Image'"), std::string::npos);

  files.kernel = write_temp(std::vector<uint8_t>(100, 0));
  auto not_image = load_boot_files(files, bus_);
  ASSERT_FALSE(not_image.ok());
  EXPECT_NE(not_image.message().find("not a RISC-V Linux Image"), std::string::npos);

  files.kernel = write_temp({0x7f, 'E', 'L', 'F', 2, 1, 1});
  auto elf = load_boot_files(files, bus_);
  ASSERT_FALSE(elf.ok());
  EXPECT_NE(elf.message().find("is an ELF file"), std::string::npos);

  files.kernel = write_temp(fake_image(1000, 64ull << 20));
  auto too_big = load_boot_files(files, bus_);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.message().find("needs 64.0 MiB of RAM"), std::string::npos);

  files.kernel = write_temp(fake_image(1000));
  files.initrd = write_temp({});
  auto empty = load_boot_files(files, bus_);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("is empty"), std::string::npos);

  files.initrd = write_temp(std::vector<uint8_t>(15ull << 20, 1));
  auto no_room = load_boot_files(files, bus_);
  ASSERT_FALSE(no_room.ok());
  EXPECT_NE(no_room.message().find("too small for the kernel"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::machine::virt
