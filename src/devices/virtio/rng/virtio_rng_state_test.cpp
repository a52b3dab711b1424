#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "devices/state_test_util.h"
#include "devices/virtio/rng/virtio_rng.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

struct RngSide {
  mem::Bus bus{kRamBase, kRamSize};
  VirtioRng rng;
  VirtioMmio mmio{bus, rng, [](bool) {}};
  FakeDriver drv{mmio};
};

TEST(VirtioRngState, PauseResumeAndRoundTrip) {
  RngSide a;
  GuestRing ring{a.bus, kRamBase + 0x10000, 16};
  ASSERT_TRUE(a.drv.negotiate(~0ull));
  a.drv.setup_queue(0, ring);
  a.drv.driver_ok();
  ring.add({{kRamBase + 0x100000, 32, true}});
  a.drv.notify(0);
  ASSERT_TRUE(ring.wait_used(1));
  ring.take_used();
  a.mmio.pause();
  ring.add({{kRamBase + 0x100000, 16, true}});
  a.drv.notify(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(ring.used_idx(), 1);
  const std::vector<uint8_t> state = save(a.mmio);
  RngSide b;
  copy_ram(a.bus, b.bus);  // RAM as saved, while paused
  a.mmio.resume();
  ASSERT_TRUE(ring.wait_used(1));

  ASSERT_TRUE(load(b.mmio, state).ok());
  // The counters continue, and the request pending at the snapshot is served.
  EXPECT_TRUE(wait_for([&] { return b.rng.stats().requests == 2 && b.rng.stats().bytes == 48; }));
  EXPECT_EQ(get<uint16_t>(b.bus, ring.used + 2), 2);
  expect_truncations_refused(state, "virtio-rng-mmio", [](StateReader& r) {
    RngSide c;
    c.mmio.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
