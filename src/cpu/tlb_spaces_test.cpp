#include "cpu/tlb_spaces.h"

#include <gtest/gtest.h>

#include <set>

namespace nimbus::cpu {
namespace {

constexpr uint64_t sv39(uint64_t asid, uint64_t root_ppn) {
  return (8ULL << 60) | (asid << 44) | root_ppn;
}

TEST(TlbSpaces, SameSatpSameTagOthersDistinct) {
  TlbSpaces s;
  bool wipe = true;
  const uint8_t a = s.select(sv39(1, 0x100), wipe);
  EXPECT_FALSE(wipe);
  const uint8_t b = s.select(sv39(2, 0x200), wipe);
  const uint8_t c = s.select(sv39(1, 0x300), wipe);  // same ASID, other root: other space
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
  EXPECT_EQ(s.select(sv39(1, 0x100), wipe), a);
  EXPECT_EQ(s.select(sv39(2, 0x200), wipe), b);
  EXPECT_FALSE(wipe);
}

TEST(TlbSpaces, RetireAsidGivesItsSpacesFreshTagsOnly) {
  TlbSpaces s;
  bool wipe;
  const uint8_t a = s.select(sv39(1, 0x100), wipe);
  const uint8_t a2 = s.select(sv39(1, 0x180), wipe);
  const uint8_t b = s.select(sv39(2, 0x200), wipe);
  const uint8_t bare = s.select(0, wipe);
  s.retire_asid(1);
  const uint8_t a_new = s.select(sv39(1, 0x100), wipe);
  EXPECT_NE(a_new, a);
  EXPECT_NE(a_new, a2);
  EXPECT_NE(s.select(sv39(1, 0x180), wipe), a2);
  EXPECT_EQ(s.select(sv39(2, 0x200), wipe), b);
  s.retire_asid(0);  // bare mode has no ASID: keeps its tag
  EXPECT_EQ(s.select(0, wipe), bare);
  EXPECT_FALSE(wipe);
}

TEST(TlbSpaces, LeastRecentlySelectedIsForgottenFirst) {
  TlbSpaces s;
  bool wipe;
  uint8_t tags[TlbSpaces::kSlots + 1];
  for (unsigned i = 0; i < TlbSpaces::kSlots; i++) tags[i] = s.select(sv39(i, 0x1000 + i), wipe);
  EXPECT_EQ(s.select(sv39(0, 0x1000), wipe), tags[0]);         // 0 is now the most recent
  tags[TlbSpaces::kSlots] = s.select(sv39(99, 0x9999), wipe);  // evicts 1
  EXPECT_EQ(s.select(sv39(0, 0x1000), wipe), tags[0]);
  EXPECT_NE(s.select(sv39(1, 0x1001), wipe), tags[1]);  // came back with a new tag
  EXPECT_EQ(s.select(sv39(99, 0x9999), wipe), tags[TlbSpaces::kSlots]);
}

// Tags are never reused until all have been handed out; then the caller is told to wipe.
TEST(TlbSpaces, RunningOutOfTagsAsksForAWipe) {
  TlbSpaces s;
  bool wipe;
  std::set<unsigned> seen;
  for (unsigned i = 0; i < TlbSpaces::kMaxTag; i++) {
    seen.insert(s.select(sv39(i & 0xFFFF, 0x1000 + i), wipe));
    ASSERT_FALSE(wipe) << i;
    if (i % 3 == 0) s.retire_asid(static_cast<uint16_t>(i));
  }
  EXPECT_EQ(seen.size(), TlbSpaces::kMaxTag);
  EXPECT_EQ(seen.count(0), 0u);
  const uint8_t t = s.select(sv39(7, 0x7777), wipe);
  EXPECT_TRUE(wipe);
  EXPECT_EQ(t, 1u);
  EXPECT_EQ(s.select(sv39(7, 0x7777), wipe), 1u);
  EXPECT_FALSE(wipe);
}

}  // namespace
}  // namespace nimbus::cpu
