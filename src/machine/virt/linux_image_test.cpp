#include "machine/virt/linux_image.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace nimbus::machine::virt {
namespace {

void put(std::vector<uint8_t>& b, size_t at, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; i++) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// An EFI stub Image as Linux builds it: "MZ", the PE/COFF header at 64 with a 160-byte
// optional header and two sections, .text at 4096 and .data up to `total` bytes.
std::vector<uint8_t> efi_image(uint64_t total) {
  std::vector<uint8_t> b(total, 0);
  b[0] = 'M';
  b[1] = 'Z';
  put(b, 8, 2 << 20, 8);        // text_offset
  put(b, 16, total + 8192, 8);  // image_size: the file and its bss
  std::memcpy(b.data() + 56, "RSC\x05", 4);
  put(b, 60, 64, 4);  // the PE/COFF header's offset
  std::memcpy(b.data() + 64, "PE\0\0", 4);
  put(b, 64 + 6, 2, 2);     // sections
  put(b, 64 + 20, 160, 2);  // optional header size
  const size_t table = 64 + 24 + 160;
  const uint64_t data = total / 2;
  put(b, table + 16, data - 4096, 4);  // .text: raw size, raw offset
  put(b, table + 20, 4096, 4);
  put(b, table + 40 + 16, total - data, 4);  // .data
  put(b, table + 40 + 20, data, 4);
  return b;
}

std::vector<uint8_t> head_of(const std::vector<uint8_t>& file, size_t len) {
  len = std::min(len, file.size());
  return {file.begin(), file.begin() + static_cast<ptrdiff_t>(std::min(len, kLinuxImageHeadBytes))};
}

TEST(LinuxImage, ReadsTheHeader) {
  const std::vector<uint8_t> image = efi_image(100000);
  auto h = parse_linux_image(head_of(image, image.size()), image.size(), "Image");
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_EQ(h->text_offset, 2u << 20);
  EXPECT_EQ(h->image_size, 100000u + 8192);
  EXPECT_EQ(h->footprint(), 100000u + 8192);
}

TEST(LinuxImage, RefusesAnImageShorterThanItsSections) {
  const std::vector<uint8_t> image = efi_image(100000);
  // Cut inside the data, inside the section table, inside the PE header, and right after
  // the 64-byte Image header (which alone would pass for an Image).
  for (size_t len : {99999ul, 90000ul, 300ul, 100ul, 70ul, 64ul}) {
    auto h = parse_linux_image(head_of(image, len), len, "cut/Image");
    ASSERT_FALSE(h.ok()) << len;
    EXPECT_NE(h.message().find("kernel 'cut/Image' is truncated"), std::string::npos)
        << h.message();
    EXPECT_NE(h.message().find(fmt::format("the file has {}", len)), std::string::npos)
        << h.message();
  }
}

TEST(LinuxImage, WithoutAPeHeaderOnlyTheImageHeaderIsChecked) {
  // A kernel without an EFI stub says nothing of its file's length (image_size counts its
  // bss, which the file does not hold).
  std::vector<uint8_t> image(200, 0);
  put(image, 16, 1 << 20, 8);
  std::memcpy(image.data() + 56, "RSC\x05", 4);
  auto h = parse_linux_image(image, image.size(), "Image");
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_EQ(h->footprint(), 1u << 20);
  // "MZ" with no PE signature where res3 points: not a PE header.
  image[0] = 'M';
  image[1] = 'Z';
  put(image, 60, 128, 4);
  EXPECT_TRUE(parse_linux_image(image, image.size(), "Image").ok());
}

TEST(LinuxImage, RefusesWhatIsNotAnImage) {
  const std::vector<uint8_t> short_file(63, 0);
  auto a = parse_linux_image(short_file, short_file.size(), "x");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.message().find("shorter than the 64-byte header"), std::string::npos);
  auto b = parse_linux_image(std::vector<uint8_t>(64, 0), 64, "x");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.message().find("no RSC\\x05 magic"), std::string::npos);
  auto c = parse_linux_image({0x7f, 'E', 'L', 'F'}, 4, "x");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.message().find("is an ELF file"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::machine::virt
