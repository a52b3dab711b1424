#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "devices/state_test_util.h"
#include "devices/virtio/net/virtio_net.h"
#include "devices/virtio/virtio_test_backends.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

constexpr uint64_t kBuf = kRamBase + 0x100000;

struct NetSide {
  mem::Bus bus{kRamBase, kRamSize};
  FakeNet* net;
  std::unique_ptr<VirtioNet> dev;
  std::unique_ptr<VirtioMmio> mmio;
  std::unique_ptr<FakeDriver> drv;
  NetSide() {
    auto n = std::make_unique<FakeNet>();
    net = n.get();
    dev = std::make_unique<VirtioNet>(std::move(n), VirtioNet::Mac{2, 0, 0, 0, 0, 1});
    EXPECT_TRUE(dev->start().ok());
    mmio = std::make_unique<VirtioMmio>(bus, *dev, [](bool) {});
    drv = std::make_unique<FakeDriver>(FakeDriver{*mmio});
  }
  ~NetSide() {
    mmio.reset();
    dev.reset();
  }
};

struct VirtioNetState : ::testing::Test {
  NetSide a;
  GuestRing rx{a.bus, kRamBase + 0x10000, 16};
  GuestRing tx{a.bus, kRamBase + 0x20000, 16};
  void SetUp() override {
    ASSERT_TRUE(a.drv->negotiate(~0ull));
    a.drv->setup_queue(0, rx);
    a.drv->setup_queue(1, tx);
    a.drv->driver_ok();
  }
};

TEST_F(VirtioNetState, PausedDeviceHoldsFramesAndTransmits) {
  rx.add({{kBuf, 1526, true}});
  put<uint8_t>(a.bus, kBuf + 12, 0xee);
  a.mmio->pause();
  EXPECT_FALSE(a.net->inject(std::vector<uint8_t>(60, 0x11)));  // refused, backend keeps it
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_EQ(get<uint8_t>(a.bus, kBuf + 12), 0xee);  // guest RAM untouched
  std::vector<uint8_t> frame(72, 0);
  poke(a.bus, kBuf + 0x10000, frame.data(), frame.size());
  tx.add({{kBuf + 0x10000, 72, false}});
  a.drv->notify(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(tx.used_idx(), 0);
  EXPECT_EQ(a.net->sent_count(), 0u);
  EXPECT_EQ(a.net->held_count(), 1u);

  a.mmio->resume();
  ASSERT_TRUE(rx.wait_used(1));
  ASSERT_TRUE(tx.wait_used(1));
  EXPECT_EQ(get<uint8_t>(a.bus, kBuf + 12), 0x11);
  EXPECT_TRUE(wait_for([&] { return a.net->sent_count() == 1; }));
  EXPECT_EQ(a.net->held_count(), 0u);
}

TEST_F(VirtioNetState, RoundTripReceivesIntoTheRestoredRing) {
  rx.add({{kBuf, 1526, true}});
  ASSERT_TRUE(a.net->inject(std::vector<uint8_t>(60, 0x22)));
  rx.take_used();
  rx.add({{kBuf + 0x1000, 1526, true}});
  a.mmio->pause();
  const std::vector<uint8_t> state = save(*a.mmio);

  NetSide b;
  copy_ram(a.bus, b.bus);
  GuestRing rx2 = clone_ring(b.bus, rx);
  ASSERT_TRUE(load(*b.mmio, state).ok());
  EXPECT_EQ(b.dev->stats().rx_packets, 1u);
  EXPECT_EQ(b.dev->stats().rx_bytes, 60u);
  EXPECT_TRUE(wait_for([&] { return b.net->resumes.load() > 0; }));
  ASSERT_TRUE(b.net->inject(std::vector<uint8_t>(70, 0x33)));
  ASSERT_TRUE(rx2.wait_used(1));
  const auto [id, len] = rx2.take_used();
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(len, 12u + 70u);
  EXPECT_EQ(get<uint8_t>(b.bus, kBuf + 0x1000 + 12), 0x33);
  EXPECT_EQ(b.dev->stats().rx_packets, 2u);
}

TEST_F(VirtioNetState, RefusesTruncatedState) {
  const std::vector<uint8_t> state = save(*a.mmio);
  expect_truncations_refused(state, "virtio-net-mmio", [](StateReader& r) {
    NetSide c;
    c.mmio->load_state(r);
  });
  load_garbage(
      state,
      [](StateReader& r) {
        NetSide c;
        c.mmio->load_state(r);
      },
      100);
}

}  // namespace
}  // namespace nimbus::devices
