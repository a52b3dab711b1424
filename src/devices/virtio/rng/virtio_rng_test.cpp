#include "devices/virtio/rng/virtio_rng.h"

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

TEST(VirtioRng, FillsWritableBuffers) {
  mem::Bus bus{kRamBase, kRamSize};
  VirtioRng rng;
  VirtioMmio mmio{bus, rng, [](bool) {}};
  FakeDriver drv{mmio};
  GuestRing ring{bus, kRamBase + 0x10000, 16};
  EXPECT_EQ(drv.rd(VirtioMmio::kDeviceId), 4u);
  ASSERT_TRUE(drv.negotiate(~0ull));
  drv.setup_queue(0, ring);
  drv.driver_ok();
  const uint64_t buf = kRamBase + 0x100000;
  ring.add({{buf, 64, true}, {buf + 64, 64, true}});
  drv.notify(0);
  ASSERT_TRUE(ring.wait_used(1));
  EXPECT_EQ(ring.take_used().second, 128u);
  int zeros = 0;
  for (int i = 0; i < 128; i++) zeros += get<uint8_t>(bus, buf + i) == 0;
  EXPECT_LT(zeros, 16);
  EXPECT_TRUE(wait_for([&] { return mmio.irq_level(); }));
  EXPECT_EQ(rng.stats().bytes, 128u);
  EXPECT_EQ(rng.stats().requests, 1u);
}

TEST(VirtioRng, LoopNeedsReset) {
  mem::Bus bus{kRamBase, kRamSize};
  VirtioRng rng;
  VirtioMmio mmio{bus, rng, [](bool) {}};
  FakeDriver drv{mmio};
  GuestRing ring{bus, kRamBase + 0x10000, 16};
  ASSERT_TRUE(drv.negotiate(~0ull));
  drv.setup_queue(0, ring);
  drv.driver_ok();
  ring.write_desc(3, kRamBase + 0x100000, 8, kVirtqDescFWrite | kVirtqDescFNext, 3);
  ring.publish(3);
  drv.notify(0);
  EXPECT_TRUE(wait_for([&] { return drv.needs_reset(); }));
}

}  // namespace
}  // namespace nimbus::devices
