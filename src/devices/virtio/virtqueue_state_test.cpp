#include <gtest/gtest.h>

#include "devices/state_test_util.h"
#include "devices/virtio/virtio_test_driver.h"
#include "devices/virtio/virtqueue.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT
using PR = Virtqueue::PopResult;

struct VirtqueueStateTest : QueueFixture {
  mem::Bus bus2{kRamBase, kRamSize};  // the restore target
};

TEST_F(VirtqueueStateTest, RestoredQueueContinuesAtTheSameIndexes) {
  ASSERT_TRUE(vq.enable(true, true));
  // Go round the ring once so the indexes are not trivial.
  for (int i = 0; i < 20; ++i) {
    ring.add({{kRamBase + 0x100000, 8, true}});
    ASSERT_EQ(vq.pop(chain), PR::kChain);
    vq.push_used(chain.head, 8);
    ring.take_used();
  }
  ring.add({{kRamBase + 0x100000, 8, true}});
  ASSERT_EQ(vq.pop(chain), PR::kChain);  // in flight at the snapshot
  const uint16_t in_flight = chain.head;
  EXPECT_TRUE(vq.needs_interrupt());
  const std::vector<uint8_t> state = save(vq);

  copy_ram(bus, bus2);
  GuestRing ring2 = clone_ring(bus2, ring);
  Virtqueue vq2(bus2, 256);
  ASSERT_TRUE(load(vq2, state).ok());
  EXPECT_TRUE(vq2.ready());
  EXPECT_EQ(vq2.size(), 16);
  EXPECT_EQ(vq2.last_avail_idx(), 21);
  EXPECT_EQ(vq2.used_idx(), 20);
  EXPECT_EQ(ring2.used_idx(), 20);  // load does not touch guest RAM
  EXPECT_EQ(save(vq2), state);

  vq2.push_used(in_flight, 8);
  EXPECT_EQ(ring2.used_idx(), 21);
  EXPECT_EQ(ring2.take_used().first, in_flight);
  EXPECT_EQ(vq2.pop(chain), PR::kEmpty);
  const uint16_t h = ring2.add({{kRamBase + 0x100000, 32, true}});
  ASSERT_EQ(vq2.pop(chain), PR::kChain);
  EXPECT_EQ(chain.head, h);
  EXPECT_EQ(chain.writable[0].ptr, bus2.ram_ptr(kRamBase + 0x100000, 32));  // bus2's RAM
  vq2.push_used(chain.head, 32);
  EXPECT_EQ(ring2.avail_event(), 22);  // EVENT_IDX state restored
}

TEST_F(VirtqueueStateTest, IdleQueueKeepsItsRegisters) {
  vq.set_size(12);  // the guest may write any size before QueueReady
  vq.desc_addr = 0x1234;
  const std::vector<uint8_t> state = save(vq);
  Virtqueue vq2(bus, 256);
  ASSERT_TRUE(load(vq2, state).ok());
  EXPECT_FALSE(vq2.ready());
  EXPECT_EQ(vq2.size(), 12);
  EXPECT_EQ(vq2.desc_addr, 0x1234u);
}

TEST_F(VirtqueueStateTest, RefusesRingsOutsideRamOrOfBadSize) {
  ASSERT_TRUE(vq.enable(false, false));
  Virtqueue small(bus, 8);  // max size 8 < 16
  Status s = load(small, save(vq));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("virtqueue"), std::string::npos) << s.message();
  EXPECT_FALSE(small.ready());

  mem::Bus tiny(kRamBase, 0x10000);  // the ring lies beyond this RAM
  Virtqueue vq2(tiny, 256);
  s = load(vq2, save(vq));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("addresses"), std::string::npos) << s.message();
  EXPECT_FALSE(vq2.ready());

  const std::vector<uint8_t> state = save(vq);
  expect_truncations_refused(state, "virtqueue", [this](StateReader& r) {
    Virtqueue q(bus, 256);
    q.load_state(r);
    EXPECT_FALSE(q.ready());
  });
  load_garbage(state, [this](StateReader& r) {
    Virtqueue q(bus, 256);
    q.load_state(r);
    if (r.ok() && q.ready()) {
      // Whatever was accepted must be safe to use.
      VirtqChain c;
      for (int i = 0; i < 20 && q.pop(c) == PR::kChain; ++i) q.push_used(c.head, 0);
      q.needs_interrupt();
    }
  });
}

}  // namespace
}  // namespace nimbus::devices
