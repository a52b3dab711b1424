#include "machine/virt/boot_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
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
  EXPECT_EQ(
      std::memcmp(bus_.ram_ptr(layout->kernel_entry, kernel.size()), kernel.data(), kernel.size()),
      0);
  EXPECT_EQ(layout->initrd_start % 4096, 0u);
  EXPECT_EQ(layout->initrd_end - layout->initrd_start, initrd.size());
  EXPECT_LE(layout->initrd_end, kRamBase + kRamSize - (2 << 20));
  EXPECT_EQ(
      std::memcmp(bus_.ram_ptr(layout->initrd_start, initrd.size()), initrd.data(), initrd.size()),
      0);
}

TEST_F(BootImageTest, KernelLargerThanItsHeaderSizeCountsItsFileSize) {
  const std::vector<uint8_t> kernel = fake_image(200000, 4096);
  BootFiles files;
  files.kernel = write_temp(kernel);
  auto layout = load_boot_files(files, bus_);
  ASSERT_TRUE(layout.ok()) << layout.message();
  EXPECT_EQ(layout->kernel_end, layout->kernel_entry + kernel.size());
}

// Each bad boot file is refused by load_boot_files, and by check_boot_files (the same
// checks at configuration time), with a message naming the file and the problem.
void expect_refused(const BootFiles& files, mem::Bus& bus, const std::string& text) {
  auto loaded = load_boot_files(files, bus);
  ASSERT_FALSE(loaded.ok()) << text;
  EXPECT_NE(loaded.message().find(text), std::string::npos) << loaded.message();
  Status checked = check_boot_files(files, bus.ram_size());
  ASSERT_FALSE(checked.ok()) << text;
  EXPECT_NE(checked.message().find(text), std::string::npos) << checked.message();
}

TEST_F(BootImageTest, RefusesWhatIsNotARegularFile) {
  // /dev/zero would be read forever, a FIFO with no writer would block the open, a pipe
  // (as /dev/fd/N) could be fed without end: none is read.
  const std::string kernel = write_temp(fake_image(1000));
  BootFiles files;
  files.kernel = "/dev/zero";
  expect_refused(files, bus_, "kernel '/dev/zero' is a character device");
  files.kernel = kernel;
  files.initrd = "/dev/zero";
  expect_refused(files, bus_, "initrd '/dev/zero' is a character device");
  files.initrd.clear();
  files.firmware = "/dev/zero";
  expect_refused(files, bus_, "firmware '/dev/zero' is a character device");
  files.firmware.clear();

  char dir[] = "/tmp/nimbus_boot_dir_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string fifo = std::string(dir) + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  files.initrd = fifo;
  expect_refused(files, bus_, "initrd '" + fifo + "' is a FIFO or pipe");
  files.initrd = dir;
  expect_refused(files, bus_, "is a directory");
  std::remove(fifo.c_str());
  rmdir(dir);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  files.initrd = "/dev/fd/" + std::to_string(fds[0]);
  expect_refused(files, bus_, "is a FIFO or pipe");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(BootImageTest, RefusesFilesLargerThanRamWithoutReadingThem) {
  // Sparse files of 1 TiB: reading one would take hours; the size alone refuses them.
  auto sparse = [this](const std::vector<uint8_t>& start, uint64_t size) {
    const std::string path = write_temp(start);
    EXPECT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0);
    return path;
  };
  BootFiles files;
  files.kernel = sparse(fake_image(1000), 1ull << 40);
  expect_refused(files, bus_, "is larger than the VM's memory (16.0 MiB)");
  files.kernel = write_temp(fake_image(1000));
  files.initrd = sparse({1}, 1ull << 40);
  expect_refused(files, bus_, "initrd");
  expect_refused(files, bus_, "is larger than the VM's memory (16.0 MiB)");
  files.initrd.clear();
  files.firmware = sparse({1}, 1ull << 40);
  expect_refused(files, bus_, "firmware");
  expect_refused(files, bus_, "is larger than the VM's memory (16.0 MiB)");
  // Smaller than RAM but not where it goes: the initrd above the kernel, below the DTB.
  files.firmware.clear();
  files.initrd = sparse({1}, kRamSize - (1 << 20));
  expect_refused(files, bus_, "too small for the kernel");
}

TEST_F(BootImageTest, RefusesATruncatedImage) {
  // An EFI stub Image (as images/Image) cut to its first 100 bytes: its PE/COFF header
  // says how long it should be.
  std::vector<uint8_t> image = fake_image(100000, 1 << 20);
  image[0] = 'M';
  image[1] = 'Z';
  const uint32_t pe = 64, sections = 1, opt = 0, raw_size = 100000 - 4096, raw_at = 4096 + 64;
  std::memcpy(image.data() + 60, &pe, 4);
  std::memcpy(image.data() + 64, "PE\0\0", 4);
  std::memcpy(image.data() + 64 + 6, &sections, 2);
  std::memcpy(image.data() + 64 + 20, &opt, 2);
  std::memcpy(image.data() + 64 + 24 + 16, &raw_size, 4);
  std::memcpy(image.data() + 64 + 24 + 20, &raw_at, 4);
  BootFiles files;
  files.kernel = write_temp(image);
  ASSERT_TRUE(load_boot_files(files, bus_).ok());
  ASSERT_TRUE(check_boot_files(files, kRamSize).ok());
  files.kernel = write_temp(std::vector<uint8_t>(image.begin(), image.begin() + 100));
  expect_refused(files, bus_,
                 "is truncated: its header describes at least 128 bytes, the file has 100");
  files.kernel = write_temp(std::vector<uint8_t>(image.begin(), image.end() - 1));
  expect_refused(files, bus_,
                 "is truncated: its header describes at least 100064 bytes, the file has 100063");
}

TEST_F(BootImageTest, ChecksWithoutAKernelCheckTheOtherFiles) {
  BootFiles files;
  files.initrd = write_temp({1, 2, 3});
  EXPECT_TRUE(check_boot_files(files, kRamSize).ok());
  files.initrd = "/dev/zero";
  EXPECT_FALSE(check_boot_files(files, kRamSize).ok());
  files.initrd = "/nonexistent/initrd";
  Status missing = check_boot_files(files, kRamSize);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot open initrd '/nonexistent/initrd'"), std::string::npos);
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
