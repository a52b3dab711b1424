#include "backends/block/qcow2.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <vector>

#include "backends/block/raw_file.h"

namespace nimbus::backends {
namespace {

class Qcow2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_qcow2_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::unique_ptr<Qcow2Image> open(const std::string& p, bool read_only = false) {
    auto image = Qcow2Image::open(p, read_only);
    EXPECT_TRUE(image.ok()) << image.message();
    return image.ok() ? std::move(*image) : nullptr;
  }
  // Overwrites bytes of a file (big-endian fields of the header, table entries).
  void poke_be(const std::string& p, uint64_t offset, uint64_t value, int bytes) {
    std::vector<uint8_t> b(bytes);
    for (int i = 0; i < bytes; ++i) b[i] = static_cast<uint8_t>(value >> (8 * (bytes - 1 - i)));
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, b.data(), b.size(), static_cast<off_t>(offset)), bytes);
    ::close(fd);
  }
  std::string open_error(const std::string& p, bool read_only = false) {
    auto image = Qcow2Image::open(p, read_only);
    return image.ok() ? std::string() : image.message();
  }
  static std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
    return v;
  }
  std::string dir_;
};

TEST_F(Qcow2Test, CreateWriteReadReopen) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 8 << 20).ok());
  auto image = open(path("a.qcow2"));
  ASSERT_TRUE(image);
  EXPECT_EQ(image->size(), 8u << 20);
  EXPECT_EQ(image->version(), 3u);
  EXPECT_EQ(image->cluster_size(), 65536u);
  auto data = pattern(200000, 3);  // spans four clusters, unaligned
  ASSERT_TRUE(image->write(12345, data.data(), data.size()).ok());
  auto tail = pattern(100, 9);
  ASSERT_TRUE(image->write((8 << 20) - 100, tail.data(), tail.size()).ok());
  ASSERT_TRUE(image->flush().ok());
  image.reset();
  image = open(path("a.qcow2"), true);
  ASSERT_TRUE(image);
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(image->read(12345, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  back.resize(100);
  ASSERT_TRUE(image->read((8 << 20) - 100, back.data(), 100).ok());
  EXPECT_EQ(back, tail);
  std::vector<uint8_t> zeros(12345, 0xff);
  ASSERT_TRUE(image->read(0, zeros.data(), zeros.size()).ok());
  EXPECT_EQ(zeros, std::vector<uint8_t>(12345, 0));
  uint8_t b;
  EXPECT_FALSE(image->read(8 << 20, &b, 1).ok());
  EXPECT_FALSE(image->write(0, &b, 1).ok());  // read-only
}

TEST_F(Qcow2Test, OverwriteInPlaceDoesNotGrowTheFile) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 1 << 20).ok());
  auto image = open(path("a.qcow2"));
  auto data = pattern(65536, 1);
  ASSERT_TRUE(image->write(0, data.data(), data.size()).ok());
  uint64_t size1 = std::filesystem::file_size(path("a.qcow2"));
  data = pattern(65536, 2);
  ASSERT_TRUE(image->write(0, data.data(), data.size()).ok());
  EXPECT_EQ(std::filesystem::file_size(path("a.qcow2")), size1);
  std::vector<uint8_t> back(65536);
  ASSERT_TRUE(image->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
}

// A host write error while allocating (EFBIG from RLIMIT_FSIZE standing in for ENOSPC)
// is an error Status; what was written before stays readable and the image stays usable.
TEST_F(Qcow2Test, HostWriteErrorDuringAllocation) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 8 << 20).ok());
  auto image = open(path("a.qcow2"));
  auto data = pattern(65536, 3);
  ASSERT_TRUE(image->write(0, data.data(), data.size()).ok());
  ASSERT_TRUE(image->flush().ok());
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit old_limit {};
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  struct rlimit limit = old_limit;
  limit.rlim_cur = std::filesystem::file_size(path("a.qcow2"));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  Status s = image->write(4 << 20, data.data(), data.size());
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(s.ok());
  image.reset();
  image = open(path("a.qcow2"));
  std::vector<uint8_t> back(65536);
  ASSERT_TRUE(image->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(image->write(4 << 20, data.data(), data.size()).ok());
  ASSERT_TRUE(image->read(4 << 20, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
}

TEST_F(Qcow2Test, SmallClustersAllocateRefcountBlocksAndL2Tables) {
  ASSERT_TRUE(create_qcow2(path("s.qcow2"), 16 << 20, 512).ok());
  auto image = open(path("s.qcow2"));
  auto data = pattern(1 << 20, 5);
  ASSERT_TRUE(image->write(3 << 20, data.data(), data.size()).ok());
  image.reset();
  image = open(path("s.qcow2"), true);
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(image->read(3 << 20, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
}

TEST_F(Qcow2Test, PartialClusterCopyOnWriteFromBackingLeavesBaseUnchanged) {
  // Base: a raw file full of a pattern.
  auto base_data = pattern(1 << 20, 7);
  std::ofstream(path("base.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(base_data.data()), base_data.size());
  ASSERT_TRUE(create_qcow2(path("top.qcow2"), 0, 65536, "base.raw", "raw").ok());
  auto image = open(path("top.qcow2"));
  ASSERT_TRUE(image);
  EXPECT_EQ(image->size(), 1u << 20);
  EXPECT_EQ(image->backing_file(), "base.raw");
  EXPECT_EQ(image->backing_format(), "raw");
  std::vector<uint8_t> hello(100, 0xee);
  ASSERT_TRUE(image->write(65536 + 1000, hello.data(), hello.size()).ok());
  image.reset();
  image = open(path("top.qcow2"), true);
  std::vector<uint8_t> back(1 << 20);
  ASSERT_TRUE(image->read(0, back.data(), back.size()).ok());
  auto expect = base_data;
  std::fill(expect.begin() + 65536 + 1000, expect.begin() + 65536 + 1100, 0xee);
  EXPECT_EQ(back, expect);
  auto base = RawFile::open(path("base.raw"), true);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE((*base)->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, base_data);
}

TEST_F(Qcow2Test, ChainOfThreeAndBackingShorterThanOverlay) {
  ASSERT_TRUE(create_qcow2(path("base.qcow2"), 1 << 20).ok());
  auto data = pattern(4096, 1);
  ASSERT_TRUE(open(path("base.qcow2"))->write(0, data.data(), data.size()).ok());
  ASSERT_TRUE(create_qcow2(path("mid.qcow2"), 0, 65536, "base.qcow2").ok());
  auto more = pattern(4096, 2);
  ASSERT_TRUE(open(path("mid.qcow2"))->write(8192, more.data(), more.size()).ok());
  ASSERT_TRUE(create_qcow2(path("top.qcow2"), 4 << 20, 4096, path("mid.qcow2"), "qcow2").ok());
  auto top = open(path("top.qcow2"));
  ASSERT_TRUE(top);
  EXPECT_EQ(top->size(), 4u << 20);
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(top->read(0, back.data(), 4096).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(top->read(8192, back.data(), 4096).ok());
  EXPECT_EQ(back, more);
  // Past the end of the backing chain: zeros, and writable.
  ASSERT_TRUE(top->read(3 << 20, back.data(), 4096).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(4096, 0));
  ASSERT_TRUE(top->write(3 << 20, data.data(), 4096).ok());
}

TEST_F(Qcow2Test, BackingLoopIsRefused) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 1 << 20).ok());
  ASSERT_TRUE(create_qcow2(path("b.qcow2"), 1 << 20, 65536, "a.qcow2", "qcow2").ok());
  // Point a at b: a -> b -> a -> ...
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 1 << 20, 65536, "b.qcow2", "qcow2").ok());
  // Short, naming the file that repeats (issue 23: it used to list the chain 16 times),
  // and read-write too: the loop is found before a second open could trip over a's lock.
  for (bool read_only : {true, false}) {
    std::string e = open_error(path("a.qcow2"), read_only);
    EXPECT_NE(e.find("backing file 'a.qcow2' is already in the backing chain (a loop)"),
              std::string::npos)
        << e;
    EXPECT_LT(e.size(), 100 + 3 * path("").size()) << e;
  }
  // An image that is its own backing file.
  ASSERT_TRUE(create_qcow2(path("c.qcow2"), 1 << 20).ok());
  ASSERT_TRUE(create_qcow2(path("d.qcow2"), 1 << 20, 65536, "c.qcow2", "qcow2").ok());
  std::filesystem::rename(path("d.qcow2"), path("c.qcow2"));
  EXPECT_NE(
      open_error(path("c.qcow2")).find("backing file 'c.qcow2' is already in the backing chain"),
      std::string::npos);
}

TEST_F(Qcow2Test, TooLongBackingChainIsOneShortMessage) {
  // Top down, so that each create sees a one-image backing chain.
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(create_qcow2(path(std::to_string(i) + ".qcow2"), 1 << 20).ok());
  for (int i = 19; i >= 1; --i) {
    ASSERT_TRUE(create_qcow2(path(std::to_string(i) + ".qcow2"), 1 << 20, 65536,
                             std::to_string(i - 1) + ".qcow2", "qcow2")
                    .ok());
  }
  std::string e = open_error(path("19.qcow2"), true);
  EXPECT_NE(e.find("backing chain longer than 16 images"), std::string::npos) << e;
  EXPECT_LT(e.size(), 100 + 2 * path("").size()) << e;
  EXPECT_EQ(open_error(path("14.qcow2"), true), "");
}

TEST_F(Qcow2Test, MissingBackingFileIsAnError) {
  ASSERT_TRUE(create_qcow2(path("b.qcow2"), 1 << 20).ok());
  ASSERT_TRUE(create_qcow2(path("top.qcow2"), 0, 65536, "b.qcow2", "qcow2").ok());
  std::filesystem::remove(path("b.qcow2"));
  EXPECT_NE(open_error(path("top.qcow2"), true).find("backing file"), std::string::npos);
  EXPECT_FALSE(create_qcow2(path("x.qcow2"), 0, 65536, "nope.qcow2").ok());
  EXPECT_FALSE(std::filesystem::exists(path("x.qcow2")));
}

TEST_F(Qcow2Test, DiscardGivesZeroClustersOverABackingFile) {
  auto base_data = pattern(256 << 10, 4);
  std::ofstream(path("base.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(base_data.data()), base_data.size());
  ASSERT_TRUE(create_qcow2(path("top.qcow2"), 0, 65536, "base.raw", "raw").ok());
  auto image = open(path("top.qcow2"));
  std::vector<uint8_t> ones(65536, 1);
  ASSERT_TRUE(image->write(65536, ones.data(), ones.size()).ok());
  ASSERT_TRUE(image->discard(0, 3 * 65536).ok());  // cluster 0 was never allocated
  std::vector<uint8_t> back(65536);
  ASSERT_TRUE(image->read(65536, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(65536, 0));
  ASSERT_TRUE(image->read(0, back.data(), back.size()).ok());  // still the backing data
  EXPECT_TRUE(std::equal(back.begin(), back.end(), base_data.begin()));
  // Writing into a zero cluster works and is partial-cluster copy-on-write from zeros.
  ASSERT_TRUE(image->write(65536 + 10, ones.data(), 10).ok());
  ASSERT_TRUE(image->read(65536, back.data(), 30).ok());
  EXPECT_EQ(back[9], 0);
  EXPECT_EQ(back[10], 1);
  EXPECT_EQ(back[20], 0);
}

TEST_F(Qcow2Test, ResizeGrowsWithinTheL1Table) {
  ASSERT_TRUE(create_qcow2(path("a.qcow2"), 1 << 20).ok());
  auto image = open(path("a.qcow2"));
  ASSERT_TRUE(image->resize(10ull << 30).ok());
  uint8_t b = 0x42;
  ASSERT_TRUE(image->write((10ull << 30) - 1, &b, 1).ok());
  EXPECT_FALSE(image->resize(1 << 20).ok());
  Status s = image->resize(1ull << 50);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("L1 table"), std::string::npos);
  image.reset();
  image = open(path("a.qcow2"), true);
  EXPECT_EQ(image->size(), 10ull << 30);
  b = 0;
  ASSERT_TRUE(image->read((10ull << 30) - 1, &b, 1).ok());
  EXPECT_EQ(b, 0x42);
}

// --- Damaged images: a clear error at open or an I/O error, never a crash. -------------

class Qcow2CorruptTest : public Qcow2Test {
 protected:
  void SetUp() override {
    Qcow2Test::SetUp();
    p_ = path("c.qcow2");
    ASSERT_TRUE(create_qcow2(p_, 4 << 20).ok());
  }
  std::string p_;
};

TEST_F(Qcow2CorruptTest, BadMagic) {
  poke_be(p_, 0, 0x12345678, 4);
  EXPECT_NE(open_error(p_).find("bad magic"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, Version1) {
  poke_be(p_, 4, 1, 4);
  EXPECT_NE(open_error(p_).find("unsupported version 1"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, Encrypted) {
  poke_be(p_, 32, 1, 4);
  EXPECT_NE(open_error(p_).find("encrypted"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, ClusterBitsOutOfRange) {
  poke_be(p_, 20, 8, 4);
  EXPECT_NE(open_error(p_).find("cluster_bits"), std::string::npos);
  poke_be(p_, 20, 22, 4);
  EXPECT_NE(open_error(p_).find("cluster_bits"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, L1OutsideFile) {
  poke_be(p_, 40, 1ull << 40, 8);
  EXPECT_NE(open_error(p_).find("L1 table"), std::string::npos);
  poke_be(p_, 40, 65536 * 3 + 8, 8);  // misaligned
  EXPECT_NE(open_error(p_).find("L1 table"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, HugeL1Size) {
  poke_be(p_, 36, 0xffffffff, 4);
  EXPECT_NE(open_error(p_).find("L1 table too large"), std::string::npos);
  poke_be(p_, 36, 0, 4);  // too small for the virtual size
  EXPECT_NE(open_error(p_).find("too small"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, RefcountTableOutsideFile) {
  poke_be(p_, 48, 1ull << 40, 8);
  EXPECT_NE(open_error(p_).find("refcount table"), std::string::npos);
  poke_be(p_, 48, 65536, 8);
  poke_be(p_, 56, 0x7fffffff, 4);
  EXPECT_NE(open_error(p_).find("refcount table"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, TruncatedFile) {
  std::filesystem::resize_file(p_, 50);
  EXPECT_NE(open_error(p_).find("truncated"), std::string::npos);
  std::filesystem::resize_file(p_, 100);
  EXPECT_NE(open_error(p_).find("truncated"), std::string::npos);
  std::filesystem::resize_file(p_, 65536 + 100);  // header survives, tables do not
  EXPECT_FALSE(open_error(p_).empty());
  std::filesystem::resize_file(p_, 0);
  EXPECT_FALSE(open_error(p_).empty());
}

TEST_F(Qcow2CorruptTest, FeatureBits) {
  poke_be(p_, 72, 1ull << 40, 8);
  EXPECT_NE(open_error(p_).find("unknown incompatible"), std::string::npos);
  poke_be(p_, 72, 2, 8);
  EXPECT_NE(open_error(p_, true).find("corrupt"), std::string::npos);
  poke_be(p_, 72, 1, 8);  // dirty: read-only only
  EXPECT_NE(open_error(p_).find("dirty"), std::string::npos);
  EXPECT_EQ(open_error(p_, true), "");
  poke_be(p_, 72, 0, 8);
  poke_be(p_, 96, 1, 4);  // 2-bit refcounts
  EXPECT_NE(open_error(p_).find("refcount width"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, UnsupportedRefcountOrderIsNamed) {
  poke_be(p_, 96, 99, 4);
  EXPECT_NE(open_error(p_).find("refcount_order 99 is not supported"), std::string::npos);
}

TEST_F(Qcow2CorruptTest, SnapshotsAreReadOnly) {
  poke_be(p_, 60, 1, 4);
  EXPECT_NE(open_error(p_).find("snapshot"), std::string::npos);
  EXPECT_EQ(open_error(p_, true), "");
}

TEST_F(Qcow2CorruptTest, L2AndDataOutsideFileAreIoErrors) {
  auto image = open(p_);
  uint8_t b = 1;
  // Allocates the data cluster (cluster 4), then the L2 table (cluster 5).
  ASSERT_TRUE(image->write(0, &b, 1).ok());
  image.reset();
  poke_be(p_, 5 * 65536, (1ull << 40) | (1ull << 63), 8);  // L2 entry 0 -> far away
  image.reset();
  image = open(p_);
  ASSERT_TRUE(image);
  Status s = image->read(0, &b, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("I/O error"), std::string::npos);
  EXPECT_FALSE(image->write(0, &b, 1).ok());
  image.reset();
  poke_be(p_, 3 * 65536, (1ull << 40) | (1ull << 63), 8);  // L1 entry 0 -> far away
  // A writer would take the cluster there for an L2 table once the file grows that far.
  EXPECT_NE(open_error(p_).find("L2 table of guest offset 0 at host offset 1099511627776 is "
                                "outside the file"),
            std::string::npos);
  image = open(p_, true);
  ASSERT_TRUE(image);
  s = image->read(0, &b, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("I/O error"), std::string::npos);
}

// Issue 23, defect 7: metadata overlaps. Layout of the 4 MiB image once guest offset 0 is
// written: header 0, refcount table 1, refcount block 2, L1 table 3, data 4, L2 table 5.
class Qcow2OverlapTest : public Qcow2CorruptTest {
 protected:
  void SetUp() override {
    Qcow2CorruptTest::SetUp();
    auto image = open(p_);
    ASSERT_TRUE(image);
    uint8_t b = 1;
    ASSERT_TRUE(image->write(0, &b, 1).ok());
  }
  void TearDown() override {
    Qcow2Image::set_l2_scan_budget(64ull << 20);
    Qcow2CorruptTest::TearDown();
  }
  std::string bytes() const {
    std::ifstream in(p_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static constexpr uint64_t kL1 = 3 * 65536, kL2 = 5 * 65536, kCopied = 1ull << 63;
};

TEST_F(Qcow2OverlapTest, DataClusterInTheL1TableOpensReadOnlyOnly) {
  poke_be(p_, kL2, kL1 | kCopied, 8);  // guest cluster 0 -> the L1 table
  const std::string before = bytes();
  std::string e = open_error(p_);
  EXPECT_NE(e.find("corrupt image: guest offset 0 is mapped to host offset 196608, inside the L1 "
                   "table; it can be opened read-only only"),
            std::string::npos)
      << e;
  auto image = open(p_, true);
  ASSERT_TRUE(image);
  uint8_t b = 0xff;
  EXPECT_TRUE(image->read(0, &b, 1).ok());
  image.reset();
  EXPECT_EQ(bytes(), before);
}

TEST_F(Qcow2OverlapTest, TablesThatPointIntoEachOtherAreRefused) {
  poke_be(p_, kL1, 65536 | kCopied, 8);  // L1 entry 0 -> the refcount table
  EXPECT_NE(open_error(p_).find("the L2 table of guest offset 0 at host offset 65536 overlaps the "
                                "refcount table"),
            std::string::npos);
  EXPECT_EQ(open_error(p_, true), "");
  poke_be(p_, kL1, kL2 | kCopied, 8);
  poke_be(p_, 65536, kL1, 8);  // refcount block 0 -> the L1 table
  EXPECT_NE(open_error(p_).find("refcount block 0 at host offset 196608 overlaps the L1 table"),
            std::string::npos);
}

// Past the open-time scan (huge images), the checks at write time alone keep guest data
// out of the metadata: in place (COPIED) and by copy-on-write, whose release of the old
// cluster would drop the L1 table's refcount.
TEST_F(Qcow2OverlapTest, WritesAndDiscardsIntoMetadataAreIoErrors) {
  Qcow2Image::set_l2_scan_budget(0);
  for (uint64_t flags : {kCopied, uint64_t{0}}) {
    poke_be(p_, kL2, kL1 | flags, 8);
    const std::string before = bytes();
    auto image = open(p_);
    ASSERT_TRUE(image);
    std::vector<uint8_t> junk(65536, 0xee);
    for (size_t len : {size_t{65536}, size_t{10}}) {
      Status s = image->write(0, junk.data(), len);
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find("I/O error: write refused: the data cluster at host offset 196608 "
                                 "overlaps the L1 table"),
                std::string::npos)
          << s.message();
    }
    Status s = image->discard(0, 65536);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("discard refused"), std::string::npos) << s.message();
    EXPECT_EQ(bytes(), before);
    // The rest of the disk is still usable.
    ASSERT_TRUE(image->write(65536, junk.data(), junk.size()).ok());
    std::vector<uint8_t> back(65536);
    ASSERT_TRUE(image->read(65536, back.data(), back.size()).ok());
    EXPECT_EQ(back, junk);
    image.reset();
    EXPECT_EQ(bytes().substr(kL1, 16), before.substr(kL1, 16));
  }
}

TEST_F(Qcow2CorruptTest, BackingNameOutsideHeaderCluster) {
  poke_be(p_, 8, 65530, 8);
  poke_be(p_, 16, 100, 4);
  EXPECT_NE(open_error(p_).find("backing file name"), std::string::npos);
}

TEST_F(Qcow2Test, CreateRefusesBadArguments) {
  EXPECT_FALSE(create_qcow2(path("a.qcow2"), 1 << 20, 1000).ok());
  EXPECT_FALSE(create_qcow2(path("a.qcow2"), 1 << 20, 256).ok());
  EXPECT_FALSE(create_qcow2(path("a.qcow2"), 1 << 20, 65536, "", "raw").ok());
  EXPECT_FALSE(create_qcow2(path("a.qcow2"), 1ull << 62, 512).ok());
}

}  // namespace
}  // namespace nimbus::backends
