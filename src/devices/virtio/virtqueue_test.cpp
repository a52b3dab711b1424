#include "devices/virtio/virtqueue.h"

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_driver.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT
using PR = Virtqueue::PopResult;

struct VirtqueueTest : QueueFixture {};

TEST_F(VirtqueueTest, EnableChecksSizeAlignmentAndRam) {
  vq.set_size(12);  // not a power of two
  EXPECT_FALSE(vq.enable(false, false));
  vq.set_size(512);  // above max
  EXPECT_FALSE(vq.enable(false, false));
  vq.set_size(0);
  EXPECT_FALSE(vq.enable(false, false));
  vq.set_size(16);
  vq.desc_addr = ring.desc + 8;  // misaligned
  EXPECT_FALSE(vq.enable(false, false));
  vq.desc_addr = kRamBase + kRamSize - 64;  // runs past RAM
  EXPECT_FALSE(vq.enable(false, false));
  vq.desc_addr = 0x1000;  // not RAM at all
  EXPECT_FALSE(vq.enable(false, false));
  vq.desc_addr = ring.desc;
  vq.device_addr = ring.used + 2;
  EXPECT_FALSE(vq.enable(false, false));
  vq.device_addr = ring.used;
  EXPECT_TRUE(vq.enable(false, false));
  EXPECT_TRUE(vq.ready());
}

TEST_F(VirtqueueTest, DirectChainSegments) {
  ASSERT_TRUE(vq.enable(false, false));
  EXPECT_EQ(vq.pop(chain), PR::kEmpty);
  const uint16_t h = ring.add({{kRamBase + 0x100000, 16, false},
                               {kRamBase + 0x100100, 0, false},  // empty: skipped
                               {kRamBase + 0x200000, 512, true},
                               {kRamBase + 0x300000, 1, true}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(chain.head, h);
  ASSERT_EQ(chain.readable.size(), 1u);
  ASSERT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.readable[0].ptr, bus.ram_ptr(kRamBase + 0x100000, 16));
  EXPECT_EQ(chain.readable_len, 16u);
  EXPECT_EQ(chain.writable_len, 513u);
  EXPECT_EQ(vq.pop(chain), PR::kEmpty);
  vq.push_used(h, 513);
  EXPECT_EQ(ring.used_idx(), 1);
  auto [id, len] = ring.take_used();
  EXPECT_EQ(id, h);
  EXPECT_EQ(len, 513u);
}

TEST_F(VirtqueueTest, IndirectChain) {
  ASSERT_TRUE(vq.enable(false, true));
  const uint16_t h = ring.build_indirect(kRamBase + 0x50000, {{kRamBase + 0x100000, 16, false},
                                                              {kRamBase + 0x200000, 4096, true},
                                                              {kRamBase + 0x300000, 1, true}});
  ring.publish(h);
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(chain.head, h);
  EXPECT_EQ(chain.readable.size(), 1u);
  EXPECT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.writable_len, 4097u);
}

TEST_F(VirtqueueTest, IndirectWithoutFeatureBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.publish(ring.build_indirect(kRamBase + 0x50000, {{kRamBase + 0x100000, 16, false}}));
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
  EXPECT_TRUE(vq.broken());
  EXPECT_EQ(vq.pop(chain), PR::kBroken);  // stays broken
}

TEST_F(VirtqueueTest, NestedIndirectBreaks) {
  ASSERT_TRUE(vq.enable(false, true));
  const uint64_t t = kRamBase + 0x50000;
  const uint16_t h = ring.build_indirect(t, {{kRamBase + 0x100000, 16, false}});
  // Turn the table's only entry into another indirect descriptor.
  put<uint64_t>(bus, t, t);
  put<uint16_t>(bus, t + 12, kVirtqDescFIndirect);
  ring.publish(h);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, IndirectLoopBreaks) {
  ASSERT_TRUE(vq.enable(false, true));
  const uint64_t t = kRamBase + 0x50000;
  const uint16_t h =
      ring.build_indirect(t, {{kRamBase + 0x100000, 16, false}, {kRamBase + 0x100000, 16, false}});
  put<uint16_t>(bus, t + 16 + 12, kVirtqDescFNext);
  put<uint16_t>(bus, t + 16 + 14, 0);  // entry 1 -> entry 0 -> entry 1 ...
  ring.publish(h);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, IndirectBadLengthBreaks) {
  ASSERT_TRUE(vq.enable(false, true));
  const uint16_t h = ring.build_indirect(kRamBase + 0x50000, {{kRamBase + 0x100000, 16, false}});
  put<uint32_t>(bus, ring.desc + 16ull * h + 8, 24);  // not a multiple of 16
  ring.publish(h);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, DescriptorLoopBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.write_desc(0, kRamBase + 0x100000, 16, kVirtqDescFNext, 1);
  ring.write_desc(1, kRamBase + 0x100000, 16, kVirtqDescFNext, 0);
  ring.publish(0);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, NextOutOfRangeBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.write_desc(0, kRamBase + 0x100000, 16, kVirtqDescFNext, 16);
  ring.publish(0);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, HeadOutOfRangeBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.write_desc(0, kRamBase + 0x100000, 16, 0, 0);
  ring.publish(200);
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, AvailIdxJumpBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.add({{kRamBase + 0x100000, 16, false}});
  put<uint16_t>(bus, ring.avail + 2, 17);  // 17 > queue size ahead
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, BufferOutsideRamBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.add({{kRamBase + kRamSize - 8, 16, true}});
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, BufferAddressOverflowBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.add({{~0ull - 4, 0xffffffff, true}});
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, ReadableAfterWritableBreaks) {
  ASSERT_TRUE(vq.enable(false, false));
  ring.add({{kRamBase + 0x100000, 16, true}, {kRamBase + 0x100000, 16, false}});
  EXPECT_EQ(vq.pop(chain), PR::kBroken);
}

TEST_F(VirtqueueTest, UnpopReturnsSameChain) {
  ASSERT_TRUE(vq.enable(false, false));
  const uint16_t h = ring.add({{kRamBase + 0x100000, 16, true}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  vq.unpop();
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(chain.head, h);
}

TEST_F(VirtqueueTest, NoInterruptFlagWithoutEventIdx) {
  ASSERT_TRUE(vq.enable(false, false));
  EXPECT_FALSE(vq.needs_interrupt());  // nothing used yet
  vq.push_used(0, 0);
  EXPECT_TRUE(vq.needs_interrupt());
  ring.set_avail_flags(kVirtqAvailFNoInterrupt);
  vq.push_used(0, 0);
  EXPECT_FALSE(vq.needs_interrupt());
}

TEST_F(VirtqueueTest, EventIdxSuppression) {
  ASSERT_TRUE(vq.enable(true, false));
  ring.set_used_event(2);  // interrupt when used idx passes 2, i.e. becomes 3
  vq.push_used(0, 0);
  EXPECT_FALSE(vq.needs_interrupt());  // used idx 1
  vq.push_used(0, 0);
  EXPECT_FALSE(vq.needs_interrupt());  // 2
  vq.push_used(0, 0);
  EXPECT_TRUE(vq.needs_interrupt());  // 3
  vq.push_used(0, 0);
  vq.push_used(0, 0);
  EXPECT_FALSE(vq.needs_interrupt());  // 5: event 2 already crossed
  ring.set_used_event(5);
  vq.push_used(0, 0);
  EXPECT_TRUE(vq.needs_interrupt());  // 6 crosses 5
  // avail_event tracks what the device consumed.
  ring.add({{kRamBase + 0x100000, 16, false}});
  ring.add({{kRamBase + 0x100000, 16, false}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(ring.avail_event(), 1);
  ASSERT_EQ(vq.pop(chain), PR::kChain);
  EXPECT_EQ(vq.pop(chain), PR::kEmpty);
  EXPECT_EQ(ring.avail_event(), 2);
}

TEST_F(VirtqueueTest, WrapsAroundTheRing) {
  ASSERT_TRUE(vq.enable(false, false));
  for (int i = 0; i < 100; i++) {
    const uint16_t h = ring.add({{kRamBase + 0x100000, 8, true}});
    ASSERT_EQ(vq.pop(chain), PR::kChain);
    ASSERT_EQ(chain.head, h);
    vq.push_used(h, 8);
    ASSERT_EQ(ring.take_used().first, h);
  }
  EXPECT_EQ(ring.used_idx(), 100);
}

TEST(VirtqCopy, ScatterGather) {
  uint8_t a[3] = {}, b[5] = {};
  std::vector<VirtqSegment> segs = {{a, 3}, {b, 5}};
  const uint8_t src[6] = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(virtq_copy_to(segs, 1, src, 6), 6u);
  EXPECT_EQ(a[1], 1);
  EXPECT_EQ(a[2], 2);
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(b[3], 6);
  uint8_t out[10] = {};
  EXPECT_EQ(virtq_copy_from(segs, 2, out, 10), 6u);  // only 6 bytes left past offset 2
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[5], 0);
  EXPECT_EQ(virtq_copy_to(segs, 20, src, 6), 0u);
}

}  // namespace
}  // namespace nimbus::devices
