#include "backends/block/disk_convert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/block/qcow2.h"

namespace nimbus::backends {
namespace {

class DiskConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_convert_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  static std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 10) + 1);
    return v;
  }
  static std::vector<uint8_t> read_all(const std::string& p) {
    DiskOptions o;
    o.path = p;
    o.read_only = true;
    auto d = open_disk(o);
    EXPECT_TRUE(d.ok()) << d.message();
    if (!d.ok()) return {};
    std::vector<uint8_t> v((*d)->size());
    EXPECT_TRUE((*d)->read(0, v.data(), v.size()).ok());
    return v;
  }
  void write_at(const std::string& p, uint64_t off, const std::vector<uint8_t>& data) {
    DiskOptions o;
    o.path = p;
    auto d = open_disk(o);
    ASSERT_TRUE(d.ok()) << d.message();
    ASSERT_TRUE((*d)->write(off, data.data(), data.size()).ok());
    ASSERT_TRUE((*d)->flush().ok());
  }
  // A raw base of 4 MiB (data in its first and third megabyte) under an 8 MiB overlay that
  // overwrites part of the base with data and part with zeros, and writes past the base.
  void make_chain() {
    {
      std::ofstream(path("base.ext4")).close();
      std::filesystem::resize_file(path("base.ext4"), 4 << 20);
    }
    write_at(path("base.ext4"), 0, pattern(1 << 20, 1));
    write_at(path("base.ext4"), 2 << 20, pattern(100000, 2));
    ASSERT_TRUE(create_qcow2(path("vm.qcow2"), 8 << 20, 65536, path("base.ext4"), "raw").ok());
    write_at(path("vm.qcow2"), 4096, pattern(70000, 3));                   // over the base
    write_at(path("vm.qcow2"), 512 << 10, std::vector<uint8_t>(1 << 18));  // zeros over data
    write_at(path("vm.qcow2"), (6 << 20) + 100, pattern(5000, 4));         // past the base
  }
  std::string dir_;
};

TEST_F(DiskConvertTest, FlattensAnOverlayAndItsBackingFile) {
  make_chain();
  auto stats = flatten_to_qcow2(path("vm.qcow2"), path("flat.qcow2"));
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->virtual_size, 8u << 20);
  auto flat = Qcow2Image::open(path("flat.qcow2"), true);
  ASSERT_TRUE(flat.ok()) << flat.message();
  EXPECT_EQ((*flat)->backing_file(), "");
  EXPECT_EQ((*flat)->size(), 8u << 20);
  flat->reset();
  EXPECT_EQ(read_all(path("flat.qcow2")), read_all(path("vm.qcow2")));
  // Data clusters: the first MiB less the 4 zeroed clusters (512-768 KiB), 2 of the third
  // MiB (100000 bytes), 1 past the base. Nothing else is allocated.
  EXPECT_EQ(stats->clusters_written, 16u - 4u + 2u + 1u);
  EXPECT_LT(stats->file_size, (15u + 8u) * 65536u);
  EXPECT_EQ(stats->file_size, std::filesystem::file_size(path("flat.qcow2")));
  // The source chain is untouched and still opens for writing (no lock left behind).
  write_at(path("vm.qcow2"), 0, pattern(10, 9));
}

TEST_F(DiskConvertTest, FlattensARawDisk) {
  std::ofstream(path("raw.img")).close();
  std::filesystem::resize_file(path("raw.img"), (1 << 20) + 512);  // not a cluster multiple
  write_at(path("raw.img"), (1 << 20) + 100, pattern(300, 5));
  auto stats = flatten_to_qcow2(path("raw.img"), path("flat.qcow2"));
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->virtual_size, (1u << 20) + 512);
  EXPECT_EQ(stats->clusters_written, 1u);
  EXPECT_EQ(read_all(path("flat.qcow2")), read_all(path("raw.img")));
}

TEST_F(DiskConvertTest, NeverOverwritesAndLeavesNothingOnFailure) {
  make_chain();
  { std::ofstream(path("taken.qcow2")) << "mine"; }
  auto r = flatten_to_qcow2(path("vm.qcow2"), path("taken.qcow2"));
  EXPECT_FALSE(r.ok());
  std::ifstream in(path("taken.qcow2"));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "mine");

  EXPECT_FALSE(flatten_to_qcow2(path("missing.qcow2"), path("out.qcow2")).ok());
  EXPECT_FALSE(std::filesystem::exists(path("out.qcow2")));

  // A source whose backing file is gone: refused, no output left.
  std::filesystem::remove(path("base.ext4"));
  EXPECT_FALSE(flatten_to_qcow2(path("vm.qcow2"), path("out.qcow2")).ok());
  EXPECT_FALSE(std::filesystem::exists(path("out.qcow2")));
}

TEST_F(DiskConvertTest, QemuImgAgrees) {
  if (std::system("qemu-img --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "qemu-img is not installed (qemu-utils)";
  make_chain();
  ASSERT_TRUE(flatten_to_qcow2(path("vm.qcow2"), path("flat.qcow2")).ok());
  EXPECT_EQ(std::system(("qemu-img check -q " + path("flat.qcow2")).c_str()), 0);
  EXPECT_EQ(std::system(("qemu-img compare -q " + path("vm.qcow2") + " " + path("flat.qcow2") +
                         " >/dev/null")
                            .c_str()),
            0);
  const std::string info = path("info.txt");
  ASSERT_EQ(std::system(("qemu-img info " + path("flat.qcow2") + " > " + info).c_str()), 0);
  std::ifstream in(info);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("backing file"), std::string::npos) << text;
  EXPECT_NE(text.find("virtual size: 8 MiB"), std::string::npos) << text;
}

}  // namespace
}  // namespace nimbus::backends
