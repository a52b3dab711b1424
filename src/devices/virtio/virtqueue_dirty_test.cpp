// The virtqueue marks what a device wrote into guest RAM in the bus's dirty-page log
// (mem/dirty_log.h) when it hands the chain back: the device-writable buffers and the
// used ring, never the device-readable buffers.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "devices/virtio/virtio_test_driver.h"
#include "devices/virtio/virtqueue.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT
using PR = Virtqueue::PopResult;

struct VirtqueueDirtyTest : QueueFixture {
  std::set<uint64_t> take() {
    std::vector<uint64_t> b;
    bus.dirty_log().take(b);
    std::set<uint64_t> s;
    for (size_t w = 0; w < b.size(); w++) {
      for (unsigned i = 0; i < 64; i++) {
        if ((b[w] >> i) & 1) s.insert(w * 64 + i);
      }
    }
    return s;
  }
  static uint64_t page(uint64_t pa) { return (pa - kRamBase) >> 12; }
  void start() {
    bus.dirty_log().clear();
    bus.dirty_log().set_enabled(true);
  }
};

TEST_F(VirtqueueDirtyTest, UsedChainMarksItsWritableBuffersAndTheUsedRing) {
  ASSERT_TRUE(vq.enable(false, false));
  start();
  const uint16_t h = ring.add({{kRamBase + 0x100000, 16, false},
                               {kRamBase + 0x200000, 512, true},
                               {kRamBase + 0x300ff0, 32, true}});  // pages 0x300 and 0x301
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_TRUE(take().empty()) << "popping writes nothing (no EVENT_IDX)";
  const uint8_t data[40] = {1, 2, 3};
  ASSERT_EQ(virtq_copy_to(chain.writable, 500, data, sizeof(data)), sizeof(data));
  vq.push_used(h, sizeof(data));
  EXPECT_EQ(take(), (std::set<uint64_t>{0x200, 0x300, 0x301, page(ring.used)}));
  EXPECT_TRUE(take().empty());
}

TEST_F(VirtqueueDirtyTest, AChainPoppedBeforeLoggingStartedIsMarkedWhenUsed) {
  ASSERT_TRUE(vq.enable(false, true));
  const uint16_t h = ring.add({{kRamBase + 0x400000, 64, true}});
  const uint16_t hi = ring.build_indirect(
      kRamBase + 0x500000, {{kRamBase + 0x600000, 8, false}, {kRamBase + 0x700000, 8, true}});
  ring.publish(hi);
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  VirtqChain second;
  ASSERT_EQ(vq.pop(second), PR::kChain);
  start();  // the device is writing the buffers now
  vq.push_used(hi, 8);
  EXPECT_EQ(take(), (std::set<uint64_t>{0x700, page(ring.used)}));
  vq.push_used(h, 64);
  EXPECT_EQ(take(), (std::set<uint64_t>{0x400, page(ring.used)}));
}

TEST_F(VirtqueueDirtyTest, EventIdxPopMarksAvailEventAndLoggingOffMarksNothing) {
  ASSERT_TRUE(vq.enable(true, false));
  const uint16_t h = ring.add({{kRamBase + 0x200000, 16, true}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  vq.push_used(h, 16);
  EXPECT_TRUE(take().empty()) << "logging off";
  start();
  const uint16_t h2 = ring.add({{kRamBase + 0x200000, 16, true}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(take(), (std::set<uint64_t>{page(ring.used + 4 + 8 * 16)}))
      << "avail_event lives in the used area";
  vq.push_used(h2, 16);
  EXPECT_EQ(take(), (std::set<uint64_t>{0x200, page(ring.used)}));
}

}  // namespace
}  // namespace nimbus::devices
