#include "devices/virtio/net/virtio_net.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/virtio/virtio_test_backends.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

struct VirtioNetTest : ::testing::Test {
  mem::Bus bus{kRamBase, kRamSize};
  FakeNet* net = nullptr;
  std::unique_ptr<VirtioNet> dev;
  std::unique_ptr<VirtioMmio> mmio;
  std::unique_ptr<FakeDriver> drv;
  GuestRing rx{bus, kRamBase + 0x10000, 16};
  GuestRing tx{bus, kRamBase + 0x20000, 16};

  void SetUp() override {
    auto n = std::make_unique<FakeNet>();
    net = n.get();
    dev =
        std::make_unique<VirtioNet>(std::move(n), VirtioNet::Mac{0x52, 0x54, 0, 0x12, 0x34, 0x56});
    ASSERT_TRUE(dev->start().ok());
    mmio = std::make_unique<VirtioMmio>(bus, *dev, [](bool) {});
    drv = std::make_unique<FakeDriver>(FakeDriver{*mmio});
    ASSERT_TRUE(drv->negotiate(~0ull));
    drv->setup_queue(0, rx);
    drv->setup_queue(1, tx);
    drv->driver_ok();
  }
  void TearDown() override {
    mmio.reset();
    dev.reset();
  }
  size_t sent_count() {
    std::lock_guard<std::mutex> lock(net->mu);
    return net->sent.size();
  }
};

TEST_F(VirtioNetTest, ConfigAndFeatures) {
  EXPECT_EQ(drv->rd(VirtioMmio::kDeviceId), 1u);
  const uint64_t f = drv->device_features();
  EXPECT_TRUE(f & VirtioNet::kFMac);
  EXPECT_TRUE(f & VirtioNet::kFStatus);
  EXPECT_FALSE(f & 1);  // no CSUM
  EXPECT_EQ(drv->config(0, 1), 0x52u);
  EXPECT_EQ(drv->config(5, 1), 0x56u);
  EXPECT_EQ(drv->config(6, 2), VirtioNet::kStatusLinkUp);
  EXPECT_FALSE(f & VirtioNet::kFMtu);  // no MTU given
}

TEST(VirtioNetMtu, OfferedWithTheMtuInConfig) {
  mem::Bus bus{kRamBase, kRamSize};
  VirtioNet dev(std::make_unique<FakeNet>(), VirtioNet::Mac{0x52, 0x54, 0, 1, 2, 3}, 1450);
  VirtioMmio mmio(bus, dev, [](bool) {});
  FakeDriver drv{mmio};
  EXPECT_TRUE(drv.device_features() & VirtioNet::kFMtu);
  EXPECT_EQ(drv.config(10, 2), 1450u);
  EXPECT_EQ(drv.config(5, 1), 3u);
}

TEST_F(VirtioNetTest, TransmitStripsHeader) {
  const uint64_t b = kRamBase + 0x100000;
  std::vector<uint8_t> hdr(12, 0), frame(60);
  for (size_t i = 0; i < frame.size(); i++) frame[i] = static_cast<uint8_t>(i);
  poke(bus, b, hdr.data(), 12);
  poke(bus, b + 12, frame.data(), frame.size());
  tx.add({{b, 12, false}, {b + 12, 60, false}});  // header in its own descriptor
  tx.add({{b, 72, false}});                       // header and frame together
  drv->notify(1);
  ASSERT_TRUE(tx.wait_used(2));
  ASSERT_TRUE(wait_for([&] { return sent_count() == 2; }));
  EXPECT_EQ(net->sent[0], frame);
  EXPECT_EQ(net->sent[1], frame);
  const VirtioNet::Stats s = dev->stats();
  EXPECT_EQ(s.tx_packets, 2u);
  EXPECT_EQ(s.tx_bytes, 120u);
}

TEST_F(VirtioNetTest, ReceiveWithHeader) {
  std::vector<uint8_t> frame(64, 0xcd);
  EXPECT_FALSE(net->inject(frame));  // no buffers yet: the backend keeps it
  const uint64_t b = kRamBase + 0x100000;
  std::vector<uint8_t> junk(1526, 0xff);
  poke(bus, b, junk.data(), junk.size());
  rx.add({{b, 1526, true}});
  drv->notify(0);  // -> resume_receive on the IoThread
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(rx.take_used().second, 12u + 64u);
  for (int i = 0; i < 10; i++) EXPECT_EQ(get<uint8_t>(bus, b + i), 0) << i;
  EXPECT_EQ(get<uint16_t>(bus, b + 10), 1);  // num_buffers
  EXPECT_EQ(get<uint8_t>(bus, b + 12), 0xcd);
  EXPECT_EQ(get<uint8_t>(bus, b + 12 + 64), 0xff);
  EXPECT_GE(net->resumes.load(), 1);
  // Directly with a buffer present.
  rx.add({{b, 1526, true}});
  EXPECT_TRUE(net->inject(frame));
  EXPECT_EQ(dev->stats().rx_packets, 2u);
  EXPECT_EQ(dev->stats().rx_bytes, 128u);
}

TEST_F(VirtioNetTest, OversizedFrameDroppedBufferKept) {
  const uint64_t b = kRamBase + 0x100000;
  rx.add({{b, 100, true}});
  EXPECT_TRUE(net->inject(std::vector<uint8_t>(200, 1)));  // dropped
  EXPECT_EQ(dev->stats().rx_dropped, 1u);
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_TRUE(net->inject(std::vector<uint8_t>(80, 2)));  // fits the kept buffer
  EXPECT_EQ(rx.used_idx(), 1);
}

TEST_F(VirtioNetTest, MalformedRxRingNeedsReset) {
  rx.write_desc(0, kRamBase + 0x100000, 64, kVirtqDescFWrite | kVirtqDescFNext, 9);
  rx.write_desc(9, kRamBase + 0x100000, 64, kVirtqDescFWrite | kVirtqDescFNext, 0);
  rx.publish(0);
  EXPECT_FALSE(net->inject(std::vector<uint8_t>(60, 1)));
  EXPECT_TRUE(drv->needs_reset());
}

TEST_F(VirtioNetTest, ShortTxDropped) {
  tx.add({{kRamBase + 0x100000, 8, false}});
  drv->notify(1);
  ASSERT_TRUE(tx.wait_used(1));
  EXPECT_TRUE(wait_for([&] { return dev->stats().tx_dropped == 1; }));
  EXPECT_EQ(sent_count(), 0u);
}

TEST_F(VirtioNetTest, StopsBackendOnDestruction) {
  bool stopped = false;
  net->stopped_out = &stopped;
  mmio.reset();
  dev.reset();  // the device owns the backend: it must stop it before both are gone
  EXPECT_TRUE(stopped);
}

// A guest writing the RX QueueNotify in a loop (hostile-guest test): the notifies while
// one resume_receive is queued or running add at most one more, instead of one task each
// piling up in the IoThread (host memory grows as fast as the guest can write).
TEST_F(VirtioNetTest, RxNotifyStormIsCoalesced) {
  const int before = net->resumes.load();
  {
    // The backend is busy: the first resume_receive blocks on its lock.
    std::lock_guard<std::mutex> busy(net->mu);
    for (int i = 0; i < 10000; i++) drv->notify(0);
  }
  ASSERT_TRUE(wait_for([&] { return net->resumes.load() > before; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(net->resumes.load() - before, 2);
  // Later notifies are still answered.
  const int mid = net->resumes.load();
  drv->notify(0);
  EXPECT_TRUE(wait_for([&] { return net->resumes.load() > mid; }));
}

}  // namespace
}  // namespace nimbus::devices
