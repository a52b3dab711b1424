#include "devices/virtio/console/virtio_console.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>

#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

struct VirtioConsoleTest : ::testing::Test {
  mem::Bus bus{kRamBase, kRamSize};
  std::mutex out_mu;
  std::string out;
  VirtioConsole con{[this](const uint8_t* p, size_t n) {
    std::lock_guard<std::mutex> lock(out_mu);
    out.append(reinterpret_cast<const char*>(p), n);
  }};
  VirtioMmio mmio{bus, con, [](bool) {}};
  FakeDriver drv{mmio};
  GuestRing rx{bus, kRamBase + 0x10000, 16};
  GuestRing tx{bus, kRamBase + 0x20000, 16};

  void SetUp() override {
    EXPECT_EQ(drv.rd(VirtioMmio::kDeviceId), 3u);
    ASSERT_TRUE(drv.negotiate(~0ull));
    drv.setup_queue(0, rx);
    drv.setup_queue(1, tx);
    drv.driver_ok();
  }
  std::string output() {
    std::lock_guard<std::mutex> lock(out_mu);
    return out;
  }
};

TEST_F(VirtioConsoleTest, Transmit) {
  const uint64_t b = kRamBase + 0x100000;
  poke(bus, b, "hello, ", 7);
  poke(bus, b + 100, "world", 5);
  tx.add({{b, 7, false}});
  tx.add({{b + 100, 5, false}});
  drv.notify(1);
  ASSERT_TRUE(tx.wait_used(2));
  EXPECT_TRUE(wait_for([&] { return output() == "hello, world"; }));
  EXPECT_EQ(con.stats().bytes_tx, 12u);
}

TEST_F(VirtioConsoleTest, ReceiveBeforeAndAfterBuffers) {
  const uint8_t msg[] = {'a', 'b', 'c', 'd', 'e'};
  EXPECT_EQ(con.push_input(msg, 5), 5u);  // no buffers yet: held
  const uint64_t b = kRamBase + 0x100000;
  rx.add({{b, 3, true}});
  drv.notify(0);
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(rx.take_used().second, 3u);
  EXPECT_EQ(get<uint8_t>(bus, b + 2), 'c');
  rx.add({{b + 64, 64, true}});
  drv.notify(0);
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(rx.take_used().second, 2u);
  EXPECT_EQ(get<uint8_t>(bus, b + 65), 'e');
  // With a buffer waiting, input lands at once on the caller's thread.
  rx.add({{b + 128, 64, true}});
  drv.notify(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(con.push_input(msg, 1), 1u);
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(get<uint8_t>(bus, b + 128), 'a');
  EXPECT_EQ(con.stats().bytes_rx, 6u);
}

TEST_F(VirtioConsoleTest, InputIsBounded) {
  std::vector<uint8_t> big(VirtioConsole::kRxCapacity + 10, 'x');
  EXPECT_EQ(con.push_input(big.data(), big.size()), VirtioConsole::kRxCapacity);
  EXPECT_FALSE(con.has_input_space());
  EXPECT_EQ(con.stats().bytes_dropped, 10u);
}

TEST_F(VirtioConsoleTest, BadTxBufferNeedsReset) {
  tx.add({{kRamBase + kRamSize - 4, 100, false}});
  drv.notify(1);
  EXPECT_TRUE(wait_for([&] { return drv.needs_reset(); }));
  EXPECT_EQ(output(), "");
}

// RX notifies in a loop while the IoThread is busy (here: the sink blocks on a slow
// terminal) queue at most one deliver task, not one per notify (hostile-guest test).
TEST_F(VirtioConsoleTest, RxNotifyStormIsCoalesced) {
  const uint64_t b = kRamBase + 0x100000;
  poke(bus, b, "x", 1);
  {
    std::unique_lock<std::mutex> slow(out_mu);  // the sink waits for this
    tx.add({{b, 1, false}});
    drv.notify(1);
    ASSERT_TRUE(wait_for([&] { return con.io_backlog() == 0; }));  // TX task started
    for (int i = 0; i < 10000; i++) drv.notify(0);
    EXPECT_LE(con.io_backlog(), 1u);
  }
  EXPECT_TRUE(wait_for([&] { return output() == "x"; }));
  // Input still reaches the guest after the storm.
  rx.add({{b + 0x1000, 16, true}});
  drv.notify(0);
  EXPECT_EQ(con.push_input(reinterpret_cast<const uint8_t*>("hi"), 2), 2u);
  ASSERT_TRUE(rx.wait_used(1));
  EXPECT_EQ(rx.take_used().second, 2u);
}

}  // namespace
}  // namespace nimbus::devices
