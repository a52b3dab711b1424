#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "devices/state_test_util.h"
#include "devices/virtio/rng/virtio_rng.h"
#include "devices/virtio/virtio_mmio.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

// Completes every chain synchronously; counts lifecycle calls; has one state byte.
struct EchoDevice : VirtioDevice {
  VirtioTransport* t = nullptr;
  int activations = 0, pauses = 0, resumes = 0;
  uint8_t state = 0;
  uint32_t device_id() const override { return 42; }
  uint64_t device_features() const override { return 0; }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return 64; }
  void read_config(uint64_t, unsigned, uint64_t& value) override { value = 0; }
  void activate(VirtioTransport& tr) override {
    t = &tr;
    ++activations;
  }
  void reset() override { t = nullptr; }
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
  void pause() override { ++pauses; }
  void resume() override { ++resumes; }
  void save_state(StateWriter& w) const override {
    w.begin("echo");
    w.u8(state);
    w.end();
  }
  void load_state(StateReader& r) override {
    r.begin("echo");
    const uint8_t v = r.u8();
    r.end();
    if (r.ok()) state = v;
  }
};

struct Side {
  mem::Bus bus{kRamBase, kRamSize};
  EchoDevice echo;
  std::vector<bool> levels;
  VirtioMmio mmio{bus, echo, [this](bool l) { levels.push_back(l); }};
  FakeDriver drv{mmio};
};

TEST(VirtioMmioState, RoundTripContinuesTheRingAndKeepsTheInterrupt) {
  Side a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 16};
  ASSERT_TRUE(a.drv.negotiate(~0ull));
  a.drv.setup_queue(1, ring);
  a.drv.driver_ok();
  a.echo.state = 9;
  for (int i = 0; i < 3; ++i) {
    ring.add({{kRamBase + 0x100000, 4, true}});
    a.drv.notify(1);
    ring.take_used();
  }
  ASSERT_TRUE(a.mmio.irq_level());             // not acknowledged at the snapshot
  ring.add({{kRamBase + 0x100100, 4, true}});  // available, notify not yet handled
  a.drv.wr(VirtioMmio::kQueueSel, 1);
  a.mmio.pause();
  EXPECT_EQ(a.echo.pauses, 1);
  const std::vector<uint8_t> state = save(a.mmio);
  a.mmio.resume();
  EXPECT_EQ(a.echo.resumes, 1);

  Side b;
  copy_ram(a.bus, b.bus);
  GuestRing ring2 = clone_ring(b.bus, ring);
  ASSERT_TRUE(load(b.mmio, state).ok());
  EXPECT_EQ(b.echo.state, 9);
  EXPECT_EQ(b.echo.activations, 1);
  EXPECT_EQ(b.levels, std::vector<bool>{true});
  EXPECT_EQ(b.drv.rd(VirtioMmio::kStatus), a.drv.rd(VirtioMmio::kStatus));
  EXPECT_EQ(b.drv.rd(VirtioMmio::kQueueReady), 1u);  // queue 1 still selected
  EXPECT_EQ(b.drv.rd(VirtioMmio::kQueueDescLow), static_cast<uint32_t>(ring.desc));
  EXPECT_EQ(b.drv.rd(VirtioMmio::kInterruptStatus), VirtioMmio::kIntUsedBuffer);
  // The pending buffer was picked up by the kick at load, at the right index.
  ASSERT_EQ(ring2.used_idx(), 4);
  EXPECT_EQ(get<uint8_t>(b.bus, kRamBase + 0x100100), 0xab);
  b.drv.ack();
  EXPECT_FALSE(b.mmio.irq_level());
  ring2.take_used();
  ring2.set_used_event(4);  // EVENT_IDX: interrupt for the next completion
  ring2.add({{kRamBase + 0x100200, 4, true}});
  b.drv.notify(1);
  EXPECT_EQ(ring2.used_idx(), 5);
  EXPECT_TRUE(b.mmio.irq_level());
  // A guest reset works as usual afterwards.
  b.drv.wr(VirtioMmio::kStatus, 0);
  EXPECT_EQ(b.drv.rd(VirtioMmio::kQueueReady), 0u);
}

TEST(VirtioMmioState, InactiveDeviceIsNotActivated) {
  Side a;
  ASSERT_TRUE(a.drv.negotiate(~0ull));  // FEATURES_OK, no DRIVER_OK
  Side b;
  ASSERT_TRUE(load(b.mmio, save(a.mmio)).ok());
  EXPECT_EQ(b.echo.activations, 0);
  EXPECT_EQ(b.drv.rd(VirtioMmio::kStatus), a.drv.rd(VirtioMmio::kStatus));
  EXPECT_TRUE(b.levels.empty());
}

TEST(VirtioMmioState, RefusesAnotherDeviceOrCorruptState) {
  Side a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 16};
  ASSERT_TRUE(a.drv.negotiate(~0ull));
  a.drv.setup_queue(0, ring);
  a.drv.driver_ok();
  const std::vector<uint8_t> state = save(a.mmio);

  VirtioRng rng;
  VirtioMmio other{a.bus, rng, [](bool) {}};
  Status s = load(other, state);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("virtio-rng-mmio"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("virtio-42-mmio"), std::string::npos) << s.message();

  // The queue's descriptor table moved outside RAM: refused, transport left reset.
  std::vector<uint8_t> bad = state;
  const uint64_t desc = ring.desc;
  auto at = std::search(bad.begin(), bad.end(), reinterpret_cast<const uint8_t*>(&desc),
                        reinterpret_cast<const uint8_t*>(&desc) + 8);
  ASSERT_NE(at, bad.end());
  at[5] = 0x7f;
  Side b;
  s = load(b.mmio, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("virtio-42-mmio: virtqueue"), std::string::npos) << s.message();
  EXPECT_EQ(b.drv.rd(VirtioMmio::kStatus), 0u);
  EXPECT_EQ(b.echo.activations, 0);

  expect_truncations_refused(state, "virtio-42-mmio", [](StateReader& r) {
    Side c;
    c.mmio.load_state(r);
  });
  load_garbage(state, [](StateReader& r) {
    Side c;
    c.mmio.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
