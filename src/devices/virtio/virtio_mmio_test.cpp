#include "devices/virtio/virtio_mmio.h"

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

// A device that completes every chain on its queue synchronously, writing 0xab.
struct EchoDevice : VirtioDevice {
  VirtioTransport* t = nullptr;
  int activations = 0, resets = 0;
  uint32_t device_id() const override { return 42; }
  uint64_t device_features() const override { return 1ull << 3; }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return 64; }
  void read_config(uint64_t offset, unsigned size, uint64_t& value) override {
    value = offset == 0 && size == 4 ? 0x11223344 : 0;
  }
  void activate(VirtioTransport& tr) override {
    t = &tr;
    ++activations;
  }
  void reset() override {
    t = nullptr;
    ++resets;
  }
  void queue_notify(unsigned index) override {
    VirtqChain c;
    for (;;) {
      auto r = t->queue(index).pop(c);
      if (r == Virtqueue::PopResult::kBroken) t->set_needs_reset();
      if (r != Virtqueue::PopResult::kChain) break;
      for (auto& s : c.writable) std::memset(s.ptr, 0xab, s.len);
      t->queue(index).push_used(c.head, static_cast<uint32_t>(c.writable_len));
    }
    t->notify_queue(index);
  }
};

struct VirtioMmioTest : ::testing::Test {
  mem::Bus bus{kRamBase, kRamSize};
  EchoDevice echo;
  std::vector<bool> levels;
  VirtioMmio mmio{bus, echo, [this](bool l) { levels.push_back(l); }};
  FakeDriver drv{mmio};
  GuestRing ring{bus, kRamBase + 0x10000, 16};
};

TEST_F(VirtioMmioTest, IdentityRegisters) {
  EXPECT_EQ(drv.rd(VirtioMmio::kMagicValue), 0x74726976u);
  EXPECT_EQ(drv.rd(VirtioMmio::kVersion), 2u);
  EXPECT_EQ(drv.rd(VirtioMmio::kDeviceId), 42u);
  EXPECT_EQ(drv.rd(VirtioMmio::kVendor), VirtioMmio::kVendorId);
  const uint64_t f = drv.device_features();
  EXPECT_EQ(f, (1ull << 3) | kVirtioFVersion1 | kVirtioFEventIdx | kVirtioFIndirectDesc);
  EXPECT_EQ(drv.config(0, 4), 0x11223344u);
  drv.wr(VirtioMmio::kQueueSel, 1);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueNumMax), 64u);
  drv.wr(VirtioMmio::kQueueSel, 2);  // no such queue
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueNumMax), 0u);
  uint64_t v;
  EXPECT_FALSE(mmio.read(0x1000, 4, v));
}

TEST_F(VirtioMmioTest, FeaturesOkNeedsVersion1) {
  EXPECT_FALSE(drv.negotiate(1ull << 3));  // legacy-only driver
  EXPECT_TRUE(drv.negotiate(kVirtioFVersion1 | (1ull << 3)));
}

TEST_F(VirtioMmioTest, UnofferedFeatureRefused) {
  drv.wr(VirtioMmio::kStatus, 0);
  drv.wr(VirtioMmio::kStatus, 3);
  drv.wr(VirtioMmio::kDriverFeaturesSel, 1);
  drv.wr(VirtioMmio::kDriverFeatures, 1);  // VERSION_1
  drv.wr(VirtioMmio::kDriverFeaturesSel, 0);
  drv.wr(VirtioMmio::kDriverFeatures, 1u << 7);  // not offered
  drv.wr(VirtioMmio::kStatus, 3 | VirtioMmio::kStatusFeaturesOk);
  EXPECT_EQ(drv.rd(VirtioMmio::kStatus) & VirtioMmio::kStatusFeaturesOk, 0u);
}

TEST_F(VirtioMmioTest, QueueRoundTripAndInterruptLine) {
  ASSERT_TRUE(drv.negotiate(kVirtioFVersion1));
  drv.setup_queue(0, ring);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueReady), 1u);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueDescLow), static_cast<uint32_t>(ring.desc));
  drv.driver_ok();
  EXPECT_EQ(echo.activations, 1);
  ring.add({{kRamBase + 0x100000, 8, true}});
  drv.notify(0);
  EXPECT_EQ(get<uint64_t>(bus, kRamBase + 0x100000), 0xababababababababull);
  EXPECT_TRUE(mmio.irq_level());
  EXPECT_EQ(drv.ack(), VirtioMmio::kIntUsedBuffer);
  EXPECT_FALSE(mmio.irq_level());
  EXPECT_EQ(levels, (std::vector<bool>{true, false}));
  EXPECT_EQ(ring.take_used().second, 8u);
  // Queue layout is frozen while running.
  drv.wr(VirtioMmio::kQueueDescLow, 0x1234);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueDescLow), static_cast<uint32_t>(ring.desc));
  // Reset clears everything.
  drv.wr(VirtioMmio::kStatus, 0);
  EXPECT_EQ(echo.resets, 1);
  EXPECT_EQ(drv.rd(VirtioMmio::kStatus), 0u);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueReady), 0u);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueDescLow), 0u);
}

TEST_F(VirtioMmioTest, BadQueueAddressSetsNeedsReset) {
  ASSERT_TRUE(drv.negotiate(kVirtioFVersion1));
  drv.wr(VirtioMmio::kQueueSel, 0);
  drv.wr(VirtioMmio::kQueueNum, 16);
  drv.wr(VirtioMmio::kQueueDescLow, 0x1000);  // not RAM
  drv.wr(VirtioMmio::kQueueReady, 1);
  EXPECT_EQ(drv.rd(VirtioMmio::kQueueReady), 0u);
  EXPECT_TRUE(drv.needs_reset());
  EXPECT_TRUE(mmio.irq_level());
  EXPECT_EQ(drv.ack(), VirtioMmio::kIntConfigChange);
  drv.wr(VirtioMmio::kStatus, 0);
  EXPECT_FALSE(drv.needs_reset());
}

TEST_F(VirtioMmioTest, MalformedChainSetsNeedsReset) {
  ASSERT_TRUE(drv.negotiate(kVirtioFVersion1));
  drv.setup_queue(0, ring);
  drv.driver_ok();
  const uint32_t gen = drv.rd(VirtioMmio::kConfigGeneration);
  ring.write_desc(0, kRamBase + 0x100000, 16, kVirtqDescFNext, 0);  // self loop
  ring.publish(0);
  drv.notify(0);
  EXPECT_TRUE(drv.needs_reset());
  EXPECT_NE(drv.rd(VirtioMmio::kConfigGeneration), gen);
  EXPECT_EQ(drv.ack(), VirtioMmio::kIntConfigChange);
  // Recovery: a reset and a fresh setup work again.
  GuestRing fresh{bus, kRamBase + 0x20000, 16};
  ASSERT_TRUE(drv.negotiate(kVirtioFVersion1));
  drv.setup_queue(0, fresh);
  drv.driver_ok();
  fresh.add({{kRamBase + 0x100000, 4, true}});
  drv.notify(0);
  EXPECT_EQ(fresh.used_idx(), 1);
  EXPECT_FALSE(drv.needs_reset());
}

TEST_F(VirtioMmioTest, NonWordRegisterAccessIsHarmless) {
  uint64_t v = 7;
  EXPECT_TRUE(mmio.read(VirtioMmio::kMagicValue, 2, v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(mmio.write(VirtioMmio::kStatus, 1, 0));
}

}  // namespace
}  // namespace nimbus::devices
