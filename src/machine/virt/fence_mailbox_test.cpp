#include "machine/virt/fence_mailbox.h"

#include <gtest/gtest.h>

#include <thread>

namespace nimbus::machine::virt {
namespace {

TEST(FenceMailbox, OneRequestArrivesAsPosted) {
  FenceMailbox m;
  SfenceRequest what;
  uint64_t ticket = 0;
  EXPECT_FALSE(m.pending());
  EXPECT_FALSE(m.take(what, ticket));
  const uint64_t t = m.post(SfenceRequest{0x5000, 0x2000, true, 7});
  EXPECT_TRUE(m.pending());
  EXPECT_FALSE(m.done(t));
  ASSERT_TRUE(m.take(what, ticket));
  EXPECT_EQ(what.start, 0x5000u);
  EXPECT_EQ(what.size, 0x2000u);
  EXPECT_TRUE(what.has_asid);
  EXPECT_EQ(what.asid, 7u);
  EXPECT_FALSE(m.pending());
  EXPECT_FALSE(m.done(t)) << "done before it was performed";
  m.finish(ticket);
  EXPECT_TRUE(m.done(t));
}

// Two requests that meet become one full flush, which answers both senders.
TEST(FenceMailbox, TwoRequestsMergeIntoAFullFlush) {
  FenceMailbox m;
  const uint64_t t1 = m.post(SfenceRequest{0x5000, 0x1000, true, 1});
  const uint64_t t2 = m.post(SfenceRequest{0x9000, 0x1000, false, 0});
  SfenceRequest what;
  uint64_t ticket = 0;
  ASSERT_TRUE(m.take(what, ticket));
  EXPECT_EQ(what.start, 0u);
  EXPECT_EQ(what.size, ~0ULL);
  EXPECT_FALSE(what.has_asid);
  uint64_t none = 0;
  EXPECT_FALSE(m.take(what, none));  // one request left the box, not two
  m.finish(ticket);
  EXPECT_TRUE(m.done(t1));
  EXPECT_TRUE(m.done(t2));
}

// A request posted after the hart took the previous one waits for its own turn.
TEST(FenceMailbox, ALaterRequestIsNotAnsweredByAnEarlierFlush) {
  FenceMailbox m;
  m.post(SfenceRequest{0x1000, 0x1000, false, 0});
  SfenceRequest what;
  uint64_t first = 0, second = 0;
  ASSERT_TRUE(m.take(what, first));
  const uint64_t t = m.post(SfenceRequest{0x2000, 0x1000, false, 0});
  m.finish(first);
  EXPECT_FALSE(m.done(t));
  ASSERT_TRUE(m.take(what, second));
  EXPECT_EQ(what.start, 0x2000u);
  m.finish(second);
  EXPECT_TRUE(m.done(t));
}

// Senders on several threads, one hart serving: every sender's wait ends.
TEST(FenceMailbox, ConcurrentSendersAllGetAnswered) {
  FenceMailbox m;
  std::atomic<bool> stop{false};
  std::atomic<unsigned> performed{0};
  std::thread hart([&] {
    SfenceRequest what;
    uint64_t ticket;
    while (!stop.load()) {
      if (m.take(what, ticket)) {
        performed++;
        m.finish(ticket);
      } else {
        std::this_thread::yield();
      }
    }
  });
  std::thread senders[3];
  for (unsigned s = 0; s < 3; s++) {
    senders[s] = std::thread([&, s] {
      for (unsigned i = 0; i < 100; i++) {
        const uint64_t t = m.post(SfenceRequest{(s * 1000 + i) << 12, 4096, false, 0});
        while (!m.done(t)) std::this_thread::yield();
      }
    });
  }
  for (auto& t : senders) t.join();
  stop = true;
  hart.join();
  EXPECT_GE(performed.load(), 1u);
  EXPECT_LE(performed.load(), 300u);
  EXPECT_FALSE(m.pending());
}

}  // namespace
}  // namespace nimbus::machine::virt
