#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "devices/state_test_util.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/virtio_test_backends.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

constexpr uint64_t kHdr = kRamBase + 0x100000;
constexpr uint64_t kData = kRamBase + 0x200000;
constexpr uint64_t kStat = kRamBase + 0x300000;
constexpr size_t kDiskSize = 1 << 20;

// One VM's worth of virtio-blk: RAM, disk, device, transport.
struct BlkSide {
  mem::Bus bus{kRamBase, kRamSize};
  MemDisk* disk;
  std::unique_ptr<VirtioBlk> blk;
  std::unique_ptr<VirtioMmio> mmio;
  std::unique_ptr<FakeDriver> drv;
  explicit BlkSide(size_t disk_size = kDiskSize) {
    auto d = std::make_unique<MemDisk>(disk_size, false);
    disk = d.get();
    blk = std::make_unique<VirtioBlk>(std::move(d));
    mmio = std::make_unique<VirtioMmio>(bus, *blk, [](bool) {});
    drv = std::make_unique<FakeDriver>(FakeDriver{*mmio});
  }
  ~BlkSide() {
    mmio.reset();
    blk.reset();
  }
  void request(GuestRing& ring, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
               bool write_to_guest) {
    put<uint32_t>(bus, kHdr, type);
    put<uint32_t>(bus, kHdr + 4, 0);
    put<uint64_t>(bus, kHdr + 8, sector);
    put<uint8_t>(bus, kStat, 0xee);
    ring.add({{kHdr, 16, false}, {data, len, write_to_guest}, {kStat, 1, true}});
  }
};

TEST(VirtioBlkState, PauseHoldsNotifiesAndFlushes) {
  BlkSide a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 64};
  ASSERT_TRUE(a.drv->negotiate(~0ull));
  a.drv->setup_queue(0, ring);
  a.drv->driver_ok();
  a.mmio->pause();
  EXPECT_EQ(a.disk->flushes.load(), 1);
  std::vector<uint8_t> pattern(512, 0x3c);
  poke(a.bus, kData, pattern.data(), pattern.size());
  a.request(ring, VirtioBlk::kTOut, 4, kData, 512, false);
  a.drv->notify(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ring.used_idx(), 0);  // nothing completes while paused
  EXPECT_FALSE(a.mmio->irq_level());
  EXPECT_EQ(a.disk->data[4 * 512], 0);
  a.mmio->resume();
  ASSERT_TRUE(ring.wait_used(1));
  EXPECT_EQ(get<uint8_t>(a.bus, kStat), VirtioBlk::kSOk);
  EXPECT_EQ(a.disk->data[4 * 512], 0x3c);
  EXPECT_TRUE(wait_for([&] { return a.mmio->irq_level(); }));
}

TEST(VirtioBlkState, RoundTripFinishesThePendingRequestAndKeepsCounters) {
  BlkSide a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 64};
  ASSERT_TRUE(a.drv->negotiate(~0ull));
  a.drv->setup_queue(0, ring);
  a.drv->driver_ok();
  std::vector<uint8_t> pattern(1024, 0x77);
  poke(a.bus, kData, pattern.data(), pattern.size());
  a.request(ring, VirtioBlk::kTOut, 8, kData, 1024, false);
  a.drv->notify(0);
  ASSERT_TRUE(ring.wait_used(1));
  ring.take_used();
  a.drv->ack();
  // A request the driver submitted just before the VM stopped.
  a.mmio->pause();
  a.request(ring, VirtioBlk::kTIn, 8, kData + 4096, 1024, true);
  a.drv->notify(0);
  const std::vector<uint8_t> state = save(*a.mmio);

  BlkSide b;
  b.disk->data = a.disk->data;  // the same disk file
  copy_ram(a.bus, b.bus);
  GuestRing ring2 = clone_ring(b.bus, ring);
  ring2.set_used_event(1);  // EVENT_IDX: the driver wants an interrupt for the next one
  ASSERT_TRUE(load(*b.mmio, state).ok());
  ASSERT_TRUE(ring2.wait_used(1));  // completed in the new process
  EXPECT_EQ(ring2.take_used().second, 1025u);
  EXPECT_EQ(get<uint8_t>(b.bus, kStat), VirtioBlk::kSOk);
  EXPECT_EQ(get<uint8_t>(b.bus, kData + 4096 + 1023), 0x77);
  EXPECT_TRUE(wait_for([&] { return b.mmio->irq_level(); }));
  const VirtioBlk::Stats s = b.blk->stats();
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.write_requests, 1u);
  EXPECT_EQ(s.read_requests, 1u);
  EXPECT_EQ(s.bytes_written, 1024u);
  EXPECT_EQ(s.bytes_read, 1024u);
  // And the old one, resumed, does the same work (it never ran while paused).
  a.mmio->resume();
  ASSERT_TRUE(ring.wait_used(1));
}

TEST(VirtioBlkState, RefusesAnotherDiskAndCorruptState) {
  BlkSide a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 64};
  ASSERT_TRUE(a.drv->negotiate(~0ull));
  a.drv->setup_queue(0, ring);
  a.drv->driver_ok();
  const std::vector<uint8_t> state = save(*a.mmio);

  BlkSide bigger(2 * kDiskSize);
  const Status s = load(*bigger.mmio, state);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("virtio-blk"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("bytes"), std::string::npos) << s.message();
  EXPECT_EQ(bigger.mmio->status(), 0u);

  expect_truncations_refused(state, "virtio-blk-mmio", [](StateReader& r) {
    BlkSide c;
    c.mmio->load_state(r);
  });
  load_garbage(
      state,
      [](StateReader& r) {
        BlkSide c;
        c.mmio->load_state(r);
      },
      100);
}

}  // namespace
}  // namespace nimbus::devices
