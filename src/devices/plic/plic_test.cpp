#include "devices/plic/plic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <utility>
#include <vector>

namespace nimbus::devices {
namespace {

constexpr uint64_t kEnable0 = Plic::kEnableBase;                             // hart 0 M
constexpr uint64_t kEnable1 = Plic::kEnableBase + Plic::kEnableStride;       // hart 0 S
constexpr uint64_t kThreshold0 = Plic::kContextBase;                         // hart 0 M
constexpr uint64_t kThreshold1 = Plic::kContextBase + Plic::kContextStride;  // hart 0 S
constexpr uint64_t kClaim0 = kThreshold0 + 4;
constexpr uint64_t kClaim1 = kThreshold1 + 4;

struct PlicFixture : ::testing::Test {
  std::map<unsigned, bool> out;
  std::vector<std::pair<unsigned, bool>> calls;
  Plic plic{2, [this](unsigned c, bool l) {
              out[c] = l;
              calls.push_back({c, l});
            }};

  uint32_t rd(uint64_t off) {
    uint64_t v = 0xdeadbeef;
    EXPECT_TRUE(plic.read(off, 4, v));
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(plic.write(off, 4, v)); }
  void enable(uint64_t enable_base, unsigned id) {
    const uint64_t word = enable_base + 4 * (id / 32);
    wr(word, rd(word) | (1u << (id % 32)));
  }
  bool pending(unsigned id) { return (rd(Plic::kPendingBase + 4 * (id / 32)) >> (id % 32)) & 1; }
};

TEST_F(PlicFixture, RegistersAreWarl) {
  EXPECT_EQ(plic.num_contexts(), 4u);
  wr(4 * 10, 0xffffffff);
  EXPECT_EQ(rd(4 * 10), 7u);
  wr(4 * 95, 3);
  EXPECT_EQ(rd(4 * 95), 3u);
  wr(0, 5);  // source 0 does not exist
  EXPECT_EQ(rd(0), 0u);
  wr(4 * 96, 5);  // beyond the last source
  EXPECT_EQ(rd(4 * 96), 0u);
  wr(kThreshold1, 0xff);
  EXPECT_EQ(rd(kThreshold1), 7u);
  EXPECT_EQ(rd(kThreshold0), 0u);
  wr(kEnable1, 0xffffffff);  // enable bit of source 0 is hardwired to zero
  EXPECT_EQ(rd(kEnable1), 0xfffffffeu);
  EXPECT_EQ(rd(kEnable0), 0u);
  wr(kEnable1 + 12, 0xffffffff);  // beyond source 95
  EXPECT_EQ(rd(kEnable1 + 12), 0u);
  // Pending bits are read-only.
  wr(Plic::kPendingBase, 0xffffffff);
  EXPECT_EQ(rd(Plic::kPendingBase), 0u);
  // Contexts of a third hart do not exist.
  wr(Plic::kContextBase + 4 * Plic::kContextStride, 3);
  EXPECT_EQ(rd(Plic::kContextBase + 4 * Plic::kContextStride), 0u);
  EXPECT_TRUE(calls.empty());
}

TEST_F(PlicFixture, OutputNeedsPendingEnabledAndPriorityAboveThreshold) {
  plic.set_source_level(10, true);
  EXPECT_TRUE(pending(10));
  EXPECT_TRUE(calls.empty());  // priority 0 and not enabled
  wr(4 * 10, 1);
  EXPECT_TRUE(calls.empty());  // still not enabled
  enable(kEnable1, 10);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], std::make_pair(1u, true));  // S-mode context of hart 0 only
  EXPECT_FALSE(out[0]);
  wr(kThreshold1, 1);  // priority must be strictly greater than the threshold
  EXPECT_FALSE(out[1]);
  wr(kThreshold1, 0);
  EXPECT_TRUE(out[1]);
  wr(4 * 10, 0);  // priority 0 never interrupts
  EXPECT_FALSE(out[1]);
  wr(4 * 10, 2);
  EXPECT_TRUE(out[1]);
  // Lowering the line before the claim withdraws the request.
  plic.set_source_level(10, false);
  EXPECT_FALSE(pending(10));
  EXPECT_FALSE(out[1]);
  EXPECT_EQ(rd(kClaim1), 0u);
}

TEST_F(PlicFixture, ClaimOrderAndComplete) {
  for (unsigned id : {3u, 5u, 40u, 70u}) {
    enable(kEnable1, id);
    plic.set_source_level(id, true);
  }
  wr(4 * 3, 2);
  wr(4 * 5, 6);
  wr(4 * 40, 6);
  wr(4 * 70, 7);
  EXPECT_TRUE(out[1]);
  // Highest priority first, ties to the lowest id.
  EXPECT_EQ(rd(kClaim1), 70u);
  EXPECT_FALSE(pending(70));
  EXPECT_EQ(rd(kClaim1), 5u);
  EXPECT_EQ(rd(kClaim1), 40u);
  // Threshold hides source 3 (priority 2) from the claim too.
  wr(kThreshold1, 2);
  EXPECT_FALSE(out[1]);
  EXPECT_EQ(rd(kClaim1), 0u);
  wr(kThreshold1, 0);
  EXPECT_TRUE(out[1]);
  EXPECT_EQ(rd(kClaim1), 3u);
  EXPECT_FALSE(out[1]);
  EXPECT_EQ(rd(kClaim1), 0u);

  // In service: the line is still high but the gateway stays closed until complete.
  plic.set_source_level(5, true);
  EXPECT_FALSE(pending(5));
  EXPECT_FALSE(out[1]);
  wr(kClaim1, 5);  // complete with the line still high: pending again
  EXPECT_TRUE(pending(5));
  EXPECT_TRUE(out[1]);
  EXPECT_EQ(rd(kClaim1), 5u);
  plic.set_source_level(5, false);
  wr(kClaim1, 5);  // line low now: nothing pending
  EXPECT_FALSE(pending(5));
  EXPECT_FALSE(out[1]);
  // Completing an id that is not in service changes nothing.
  wr(kClaim1, 5);
  EXPECT_FALSE(pending(5));
}

TEST_F(PlicFixture, CompleteForIdNotEnabledInContextIsIgnored) {
  wr(4 * 7, 1);
  enable(kEnable1, 7);
  plic.set_source_level(7, true);
  EXPECT_EQ(rd(kClaim1), 7u);
  wr(kClaim0, 7);  // context 0 does not have source 7 enabled
  EXPECT_FALSE(pending(7));
  EXPECT_FALSE(out[1]);
  wr(kClaim1, 0);   // id 0 is ignored
  wr(kClaim1, 99);  // out of range is ignored
  EXPECT_FALSE(out[1]);
  wr(kClaim1, 7);
  EXPECT_TRUE(pending(7));
  EXPECT_TRUE(out[1]);
}

TEST_F(PlicFixture, ClaimBySharedContextsAndOutputsOnlyOnChange) {
  wr(4 * 33, 1);
  enable(kEnable0, 33);
  enable(kEnable1, 33);
  enable(Plic::kEnableBase + 3 * Plic::kEnableStride, 33);  // hart 1 S
  calls.clear();
  plic.set_source_level(33, true);
  EXPECT_EQ(calls.size(), 3u);
  EXPECT_TRUE(out[0]);
  EXPECT_TRUE(out[1]);
  EXPECT_TRUE(out[3]);
  EXPECT_FALSE(out[2]);
  calls.clear();
  plic.set_source_level(33, true);  // no change, no callback
  EXPECT_TRUE(calls.empty());
  // One context claims it: every context's output drops, the others claim nothing.
  EXPECT_EQ(rd(Plic::kContextBase + 3 * Plic::kContextStride + 4), 33u);
  EXPECT_FALSE(out[0]);
  EXPECT_FALSE(out[1]);
  EXPECT_FALSE(out[3]);
  EXPECT_EQ(rd(kClaim0), 0u);
  EXPECT_EQ(rd(kClaim1), 0u);
}

TEST_F(PlicFixture, HostileAccessesAreSafe) {
  uint64_t v = 0;
  EXPECT_FALSE(plic.read(Plic::kSize, 4, v));
  EXPECT_FALSE(plic.read(UINT64_MAX - 3, 4, v));
  EXPECT_FALSE(plic.read(4, 1, v));  // sub-word accesses are not decoded
  EXPECT_FALSE(plic.write(4, 2, 7));
  EXPECT_FALSE(plic.read(2, 4, v));  // misaligned
  EXPECT_TRUE(plic.read(Plic::kSize - 4, 4, v));
  EXPECT_EQ(v, 0u);
  plic.set_source_level(0, true);
  plic.set_source_level(96, true);
  plic.set_source_level(~0u, true);
  EXPECT_EQ(rd(Plic::kPendingBase), 0u);
  // 8-byte access = two words, low first.
  EXPECT_TRUE(plic.write(4 * 2, 8, 0x0000000500000003ull));
  EXPECT_EQ(rd(4 * 2), 3u);
  EXPECT_EQ(rd(4 * 3), 5u);
  EXPECT_TRUE(plic.read(4 * 2, 8, v));
  EXPECT_EQ(v, 0x0000000500000003ull);
  EXPECT_TRUE(calls.empty());
}

TEST(Plic, ContextCountIsClamped) {
  Plic plic(100000, [](unsigned, bool) {});
  EXPECT_EQ(plic.num_contexts(), Plic::kMaxContexts);
  uint64_t v = 1;
  EXPECT_TRUE(
      plic.write(Plic::kContextBase + (Plic::kMaxContexts - 1) * Plic::kContextStride, 4, 5));
  EXPECT_TRUE(
      plic.read(Plic::kContextBase + (Plic::kMaxContexts - 1) * Plic::kContextStride, 4, v));
  EXPECT_EQ(v, 5u);
}

TEST(Plic, ConcurrentClaimsNeverHandOutAnIdTwice) {
  std::atomic<int> output_calls{0};
  Plic plic(2, [&](unsigned, bool) { output_calls.fetch_add(1); });
  for (unsigned id = 1; id < Plic::kNumSources; ++id) plic.write(4 * id, 4, 1 + id % 7);
  for (unsigned c = 0; c < 4; ++c) {
    for (unsigned w = 0; w < 3; ++w) plic.write(Plic::kEnableBase + c * 0x80 + 4 * w, 4, ~0u);
  }
  std::atomic<int> claims[Plic::kNumSources] = {};
  std::atomic<bool> stop{false};
  std::vector<std::thread> harts;
  for (unsigned c = 0; c < 4; ++c) {
    harts.emplace_back([&, c] {
      const uint64_t claim = Plic::kContextBase + c * Plic::kContextStride + 4;
      while (!stop) {
        uint64_t id = 0;
        plic.read(claim, 4, id);
        if (id == 0) continue;
        // Between claim and complete no other context may get the same id.
        EXPECT_EQ(claims[id].fetch_add(1), 0);
        claims[id].fetch_sub(1);
        plic.write(claim, 4, id);
      }
    });
  }
  for (int round = 0; round < 2000; ++round) {
    plic.set_source_level(1 + round % 95, round % 3 != 0);
  }
  stop = true;
  for (auto& t : harts) t.join();
  EXPECT_GT(output_calls.load(), 0);
}

}  // namespace
}  // namespace nimbus::devices
