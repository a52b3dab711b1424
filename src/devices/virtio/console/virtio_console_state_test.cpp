#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "devices/state_test_util.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

constexpr uint64_t kBuf = kRamBase + 0x100000;

struct ConsoleSide {
  mem::Bus bus{kRamBase, kRamSize};
  std::mutex out_mu;
  std::string out;
  VirtioConsole con{[this](const uint8_t* p, size_t n) {
    std::lock_guard<std::mutex> lock(out_mu);
    out.append(reinterpret_cast<const char*>(p), n);
  }};
  VirtioMmio mmio{bus, con, [](bool) {}};
  FakeDriver drv{mmio};
  std::string output() {
    std::lock_guard<std::mutex> lock(out_mu);
    return out;
  }
};

struct VirtioConsoleState : ::testing::Test {
  ConsoleSide a;
  GuestRing rx{a.bus, kRamBase + 0x10000, 16};
  GuestRing tx{a.bus, kRamBase + 0x20000, 16};
  void SetUp() override {
    ASSERT_TRUE(a.drv.negotiate(~0ull));
    a.drv.setup_queue(0, rx);
    a.drv.setup_queue(1, tx);
    a.drv.driver_ok();
  }
};

TEST_F(VirtioConsoleState, InputWaitsWhilePaused) {
  rx.add({{kBuf, 64, true}});
  a.mmio.pause();
  const uint8_t msg[] = {'l', 's', '\n'};
  EXPECT_EQ(a.con.push_input(msg, 3), 3u);
  poke(a.bus, kBuf + 0x1000, "out", 3);
  tx.add({{kBuf + 0x1000, 3, false}});
  a.drv.notify(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_EQ(tx.used_idx(), 0);
  EXPECT_EQ(a.output(), "");
  a.mmio.resume();
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(rx.take_used().second, 3u);
  EXPECT_EQ(get<uint8_t>(a.bus, kBuf + 1), 's');
  ASSERT_TRUE(tx.wait_used(1));
  EXPECT_TRUE(wait_for([&] { return a.output() == "out"; }));
}

TEST_F(VirtioConsoleState, RoundTripKeepsPendingInput) {
  const uint8_t msg[] = {'a', 'b', 'c', 'd'};
  EXPECT_EQ(a.con.push_input(msg, 4), 4u);  // no receive buffers: held in the device
  a.mmio.pause();
  const std::vector<uint8_t> state = save(a.mmio);

  ConsoleSide b;
  copy_ram(a.bus, b.bus);
  GuestRing rx2 = clone_ring(b.bus, rx);
  ASSERT_TRUE(load(b.mmio, state).ok());
  rx2.add({{kBuf, 2, true}});
  rx2.add({{kBuf + 16, 16, true}});
  b.drv.notify(0);
  ASSERT_TRUE(rx2.wait_used(2));
  EXPECT_EQ(rx2.take_used().second, 2u);
  EXPECT_EQ(rx2.take_used().second, 2u);
  EXPECT_EQ(get<uint8_t>(b.bus, kBuf + 1), 'b');
  EXPECT_EQ(get<uint8_t>(b.bus, kBuf + 17), 'd');
  EXPECT_EQ(b.con.stats().bytes_rx, 4u);
}

TEST_F(VirtioConsoleState, RefusesCorruptState) {
  const uint8_t msg[] = {'x'};
  a.con.push_input(msg, 1);
  const std::vector<uint8_t> state = save(a.mmio);
  expect_truncations_refused(state, "virtio-console-mmio", [](StateReader& r) {
    ConsoleSide c;
    c.mmio.load_state(r);
  });
  load_garbage(
      state,
      [](StateReader& r) {
        ConsoleSide c;
        c.mmio.load_state(r);
      },
      100);
}

}  // namespace
}  // namespace nimbus::devices
