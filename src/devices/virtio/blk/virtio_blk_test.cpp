#include "devices/virtio/blk/virtio_blk.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/virtio_test_backends.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

constexpr uint64_t kHdr = kRamBase + 0x100000;   // request headers
constexpr uint64_t kData = kRamBase + 0x200000;  // data buffers
constexpr uint64_t kStat = kRamBase + 0x300000;  // status bytes

struct VirtioBlkTest : ::testing::Test {
  mem::Bus bus{kRamBase, kRamSize};
  MemDisk* disk = nullptr;
  std::unique_ptr<VirtioBlk> blk;
  std::unique_ptr<VirtioMmio> mmio;
  std::unique_ptr<FakeDriver> drv;
  GuestRing ring{bus, kRamBase + 0x10000, 64};
  std::atomic<int> irq_edges{0};

  void make(bool ro,
            uint64_t features = kVirtioFVersion1 | kVirtioFEventIdx | kVirtioFIndirectDesc) {
    auto d = std::make_unique<MemDisk>(1 << 20, ro);
    for (size_t i = 0; i < d->data.size(); i++) d->data[i] = static_cast<uint8_t>(i * 7);
    disk = d.get();
    blk = std::make_unique<VirtioBlk>(std::move(d), "disk-serial-0");
    mmio = std::make_unique<VirtioMmio>(bus, *blk, [this](bool l) { irq_edges += l; });
    drv = std::make_unique<FakeDriver>(FakeDriver{*mmio});
    ASSERT_TRUE(drv->negotiate(features | ~0ull >> 32));
    drv->setup_queue(0, ring);
    drv->driver_ok();
  }
  void TearDown() override {
    mmio.reset();
    blk.reset();
  }

  void header(uint64_t at, uint32_t type, uint64_t sector) {
    put<uint32_t>(bus, at, type);
    put<uint32_t>(bus, at + 4, 0);
    put<uint64_t>(bus, at + 8, sector);
  }
  // Submits one request and waits for it; returns {status byte, used len}.
  std::pair<uint8_t, uint32_t> run(std::vector<Buf> bufs) {
    put<uint8_t>(bus, kStat, 0xee);
    ring.add(bufs);
    drv->notify(0);
    EXPECT_TRUE(ring.wait_used(1));
    auto [id, len] = ring.take_used();
    return {get<uint8_t>(bus, kStat), len};
  }
};

TEST_F(VirtioBlkTest, ConfigAndFeatures) {
  make(false);
  EXPECT_EQ(drv->rd(VirtioMmio::kDeviceId), 2u);
  const uint64_t f = drv->device_features();
  EXPECT_TRUE(f & VirtioBlk::kFFlush);
  EXPECT_TRUE(f & VirtioBlk::kFDiscard);
  EXPECT_TRUE(f & VirtioBlk::kFSegMax);
  EXPECT_FALSE(f & VirtioBlk::kFRo);
  EXPECT_EQ(drv->config(0, 8), (1u << 20) / 512);  // capacity in sectors
  EXPECT_EQ(drv->config(0, 4), 2048u);
  EXPECT_EQ(drv->config(12, 4), VirtioBlk::kSegMax);
  EXPECT_EQ(drv->config(36, 4), VirtioBlk::kMaxDiscardSectors);
  EXPECT_EQ(drv->config(40, 4), 1u);
  EXPECT_EQ(drv->config(44, 4), 1u);
  EXPECT_EQ(drv->config(200, 4), 0u);
}

TEST_F(VirtioBlkTest, ReadWriteRoundTrip) {
  make(false);
  header(kHdr, VirtioBlk::kTIn, 3);
  auto [s, len] = run({{kHdr, 16, false}, {kData, 1024, true}, {kStat, 1, true}});
  EXPECT_EQ(s, VirtioBlk::kSOk);
  EXPECT_EQ(len, 1025u);
  EXPECT_EQ(std::memcmp(bus.ram_ptr(kData, 1024), disk->data.data() + 3 * 512, 1024), 0);
  EXPECT_GE(irq_edges.load(), 1);
  EXPECT_EQ(drv->ack() & VirtioMmio::kIntUsedBuffer, VirtioMmio::kIntUsedBuffer);
  EXPECT_FALSE(mmio->irq_level());

  std::vector<uint8_t> pattern(1536, 0x5a);
  poke(bus, kData, pattern.data(), pattern.size());
  header(kHdr, VirtioBlk::kTOut, 10);
  // Data split over two descriptors.
  std::tie(s, len) =
      run({{kHdr, 16, false}, {kData, 512, false}, {kData + 512, 1024, false}, {kStat, 1, true}});
  EXPECT_EQ(s, VirtioBlk::kSOk);
  EXPECT_EQ(std::memcmp(disk->data.data() + 10 * 512, pattern.data(), 1536), 0);
  const VirtioBlk::Stats st = blk->stats();
  EXPECT_EQ(st.requests, 2u);
  EXPECT_EQ(st.bytes_read, 1024u);
  EXPECT_EQ(st.bytes_written, 1536u);
}

TEST_F(VirtioBlkTest, IndirectRead) {
  make(false);
  header(kHdr, VirtioBlk::kTIn, 0);
  ring.publish(ring.build_indirect(kRamBase + 0x50000,
                                   {{kHdr, 16, false}, {kData, 512, true}, {kStat, 1, true}}));
  drv->notify(0);
  ASSERT_TRUE(ring.wait_used(1));
  EXPECT_EQ(ring.take_used().second, 513u);
  EXPECT_EQ(get<uint8_t>(bus, kStat), VirtioBlk::kSOk);
  EXPECT_EQ(get<uint8_t>(bus, kData + 1), 7);
}

TEST_F(VirtioBlkTest, FlushCallsBackend) {
  make(false);
  header(kHdr, VirtioBlk::kTFlush, 0);
  EXPECT_EQ(run({{kHdr, 16, false}, {kStat, 1, true}}).first, VirtioBlk::kSOk);
  EXPECT_EQ(disk->flushes.load(), 1);
  disk->fail = true;
  EXPECT_EQ(run({{kHdr, 16, false}, {kStat, 1, true}}).first, VirtioBlk::kSIoErr);
}

TEST_F(VirtioBlkTest, GetId) {
  make(false);
  header(kHdr, VirtioBlk::kTGetId, 0);
  std::vector<uint8_t> ff(20, 0xff);
  poke(bus, kData, ff.data(), 20);
  auto [s, len] = run({{kHdr, 16, false}, {kData, 20, true}, {kStat, 1, true}});
  EXPECT_EQ(s, VirtioBlk::kSOk);
  EXPECT_EQ(len, 21u);
  char id[21] = {};
  peek(bus, kData, id, 20);
  EXPECT_STREQ(id, "disk-serial-0");
}

TEST_F(VirtioBlkTest, DiscardAndWriteZeroes) {
  make(false);
  header(kHdr, VirtioBlk::kTDiscard, 0);
  put<uint64_t>(bus, kHdr + 16, 8);
  put<uint32_t>(bus, kHdr + 24, 16);
  put<uint32_t>(bus, kHdr + 28, 0);
  EXPECT_EQ(run({{kHdr, 32, false}, {kStat, 1, true}}).first, VirtioBlk::kSOk);
  ASSERT_EQ(disk->discarded.size(), 1u);
  EXPECT_EQ(disk->discarded[0], std::make_pair(uint64_t{8 * 512}, uint64_t{16 * 512}));
  // Past the end.
  put<uint64_t>(bus, kHdr + 16, 2047);
  EXPECT_EQ(run({{kHdr, 32, false}, {kStat, 1, true}}).first, VirtioBlk::kSIoErr);
  // Two segments: more than max_discard_seg.
  EXPECT_EQ(run({{kHdr, 48, false}, {kStat, 1, true}}).first, VirtioBlk::kSIoErr);

  header(kHdr, VirtioBlk::kTWriteZeroes, 0);
  put<uint64_t>(bus, kHdr + 16, 4);
  put<uint32_t>(bus, kHdr + 24, 2);
  put<uint32_t>(bus, kHdr + 28, 0);
  EXPECT_EQ(run({{kHdr, 32, false}, {kStat, 1, true}}).first, VirtioBlk::kSOk);
  for (int i = 4 * 512; i < 6 * 512; i++) ASSERT_EQ(disk->data[i], 0) << i;
  EXPECT_NE(disk->data[6 * 512 + 1], 0);
}

TEST_F(VirtioBlkTest, BadRequests) {
  make(false);
  header(kHdr, VirtioBlk::kTIn, 2048);  // first sector past the end
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 512, true}, {kStat, 1, true}}).first,
            VirtioBlk::kSIoErr);
  header(kHdr, VirtioBlk::kTIn, 2047);  // runs past the end
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 1024, true}, {kStat, 1, true}}).first,
            VirtioBlk::kSIoErr);
  header(kHdr, VirtioBlk::kTIn, ~0ull / 256);  // sector * 512 would overflow
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 512, true}, {kStat, 1, true}}).first,
            VirtioBlk::kSIoErr);
  header(kHdr, 99, 0);
  EXPECT_EQ(run({{kHdr, 16, false}, {kStat, 1, true}}).first, VirtioBlk::kSUnsupp);
  EXPECT_EQ(run({{kHdr, 8, false}, {kStat, 1, true}}).first, VirtioBlk::kSIoErr);  // short header
  // No writable byte for the status: completed with length 0, nothing written.
  header(kHdr, VirtioBlk::kTOut, 0);
  ring.add({{kHdr, 16, false}, {kData, 512, false}});
  drv->notify(0);
  ASSERT_TRUE(ring.wait_used(1));
  EXPECT_EQ(ring.take_used().second, 0u);
  // Backend failure.
  disk->fail = true;
  header(kHdr, VirtioBlk::kTIn, 0);
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 512, true}, {kStat, 1, true}}).first,
            VirtioBlk::kSIoErr);
  EXPECT_FALSE(drv->needs_reset());
  EXPECT_GE(blk->stats().errors, 6u);
}

TEST_F(VirtioBlkTest, ReadOnlyDisk) {
  make(true);
  EXPECT_TRUE(drv->device_features() & VirtioBlk::kFRo);
  EXPECT_FALSE(drv->device_features() & VirtioBlk::kFDiscard);
  header(kHdr, VirtioBlk::kTOut, 0);
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 512, false}, {kStat, 1, true}}).first,
            VirtioBlk::kSIoErr);
  header(kHdr, VirtioBlk::kTIn, 0);
  EXPECT_EQ(run({{kHdr, 16, false}, {kData, 512, true}, {kStat, 1, true}}).first, VirtioBlk::kSOk);
}

TEST_F(VirtioBlkTest, ManyRequestsInFlight) {
  make(false);
  for (int i = 0; i < 21; i++) {
    header(kHdr + 32 * i, VirtioBlk::kTIn, i);
    ring.add(
        {{kHdr + 32ull * i, 16, false}, {kData + 512ull * i, 512, true}, {kStat + i, 1, true}});
  }
  drv->notify(0);
  ASSERT_TRUE(ring.wait_used(21));
  for (int i = 0; i < 21; i++) {
    ring.take_used();
    EXPECT_EQ(get<uint8_t>(bus, kStat + i), VirtioBlk::kSOk);
    EXPECT_EQ(get<uint8_t>(bus, kData + 512ull * i + 1), static_cast<uint8_t>((512 * i + 1) * 7));
  }
}

TEST_F(VirtioBlkTest, MalformedRingNeedsReset) {
  make(false);
  ring.write_desc(5, kHdr, 16, kVirtqDescFNext, 6);
  ring.write_desc(6, kStat, 1, kVirtqDescFWrite | kVirtqDescFNext, 5);  // loop
  ring.publish(5);
  drv->notify(0);
  ASSERT_TRUE(wait_for([&] { return drv->needs_reset(); }));
  ASSERT_TRUE(wait_for([&] { return mmio->irq_level(); }));
  EXPECT_EQ(drv->ack() & VirtioMmio::kIntConfigChange, VirtioMmio::kIntConfigChange);
  EXPECT_EQ(ring.used_idx(), 0);
  // Further notifies are ignored until reset.
  drv->notify(0);
  // Buffer outside RAM after a reset and a fresh setup.
  GuestRing r2{bus, kRamBase + 0x30000, 16};
  ASSERT_TRUE(drv->negotiate(~0ull));
  drv->setup_queue(0, r2);
  drv->driver_ok();
  EXPECT_FALSE(drv->needs_reset());
  header(kHdr, VirtioBlk::kTIn, 0);
  r2.add({{kHdr, 16, false}, {kRamBase + kRamSize - 256, 512, true}, {kStat, 1, true}});
  drv->notify(0);
  ASSERT_TRUE(wait_for([&] { return drv->needs_reset(); }));
}

TEST_F(VirtioBlkTest, ResetWhileBusyIsSafe) {
  make(false);
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 8; i++) {
      header(kHdr + 32 * i, VirtioBlk::kTIn, i);
      ring.add(
          {{kHdr + 32ull * i, 16, false}, {kData + 512ull * i, 512, true}, {kStat + i, 1, true}});
    }
    drv->notify(0);
    ASSERT_TRUE(drv->negotiate(~0ull));  // resets mid-flight
    GuestRing fresh{bus, kRamBase + 0x10000, 64};
    drv->setup_queue(0, fresh);
    drv->driver_ok();
  }
}

}  // namespace
}  // namespace nimbus::devices
