#include <gtest/gtest.h>

#include <cstdint>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

constexpr uint8_t R = 1, W = 2, X = 4, L = 0x80;
constexpr uint8_t TOR = 1 << 3, NA4 = 2 << 3, NAPOT = 3 << 3;

class PmpTest : public ::testing::Test {
 protected:
  mem::Bus bus{0x80000000, 16 << 20};
  Hart hart{bus, 0};

  // NAPOT pmpaddr for a naturally aligned power-of-two region of >= 8 bytes.
  static uint64_t napot(uint64_t base, uint64_t size) { return (base >> 2) | ((size >> 3) - 1); }
};

TEST_F(PmpTest, NoEntries) {
  EXPECT_TRUE(hart.pmp_allows(0x80000000, 8, Access::kStore, kPrivM));
  EXPECT_FALSE(hart.pmp_allows(0x80000000, 8, Access::kLoad, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80000000, 4, Access::kFetch, kPrivU));
  EXPECT_TRUE(hart.pmp_page_uniform(0x80000000, kPrivS));
}

TEST_F(PmpTest, TorFirstEntryStartsAtZero) {
  hart.pmpaddr[0] = 0x80001000 >> 2;
  hart.pmpcfg[0] = TOR | R;
  EXPECT_TRUE(hart.pmp_allows(0, 8, Access::kLoad, kPrivS));
  EXPECT_TRUE(hart.pmp_allows(0x80000FF8, 8, Access::kLoad, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80001000, 8, Access::kLoad, kPrivS));  // top is exclusive
  EXPECT_FALSE(hart.pmp_allows(0x80000FF8, 8, Access::kStore, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80000FF8, 8, Access::kFetch, kPrivU));
  // Straddling the top: partial match fails even for M-mode on an unlocked entry.
  EXPECT_FALSE(hart.pmp_allows(0x80000FFC, 8, Access::kLoad, kPrivM));
  EXPECT_TRUE(hart.pmp_allows(0x80000FF8, 8, Access::kStore, kPrivM));  // unlocked: M ok
}

TEST_F(PmpTest, TorUsesPreviousAddress) {
  hart.pmpaddr[0] = 0x80002000 >> 2;
  hart.pmpcfg[0] = 0;  // off, but its address is entry 1's bottom
  hart.pmpaddr[1] = 0x80003000 >> 2;
  hart.pmpcfg[1] = TOR | R | W | X;
  EXPECT_FALSE(hart.pmp_allows(0x80001FFC, 4, Access::kLoad, kPrivS));
  EXPECT_TRUE(hart.pmp_allows(0x80002000, 4, Access::kLoad, kPrivS));
  EXPECT_TRUE(hart.pmp_allows(0x80002FFC, 4, Access::kFetch, kPrivU));
  EXPECT_FALSE(hart.pmp_allows(0x80003000, 4, Access::kLoad, kPrivS));
  // Empty TOR range (bottom >= top) matches nothing.
  hart.pmpaddr[0] = 0x80004000 >> 2;
  EXPECT_FALSE(hart.pmp_allows(0x80002000, 4, Access::kLoad, kPrivS));
}

TEST_F(PmpTest, Na4) {
  hart.pmpaddr[0] = 0x80000010 >> 2;
  hart.pmpcfg[0] = NA4 | W | R;
  EXPECT_TRUE(hart.pmp_allows(0x80000010, 4, Access::kStore, kPrivS));
  EXPECT_TRUE(hart.pmp_allows(0x80000012, 2, Access::kStore, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80000014, 4, Access::kStore, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80000010, 8, Access::kLoad, kPrivS));  // partial
  EXPECT_FALSE(hart.pmp_allows(0x8000000C, 8, Access::kLoad, kPrivM));  // partial, M too
}

TEST_F(PmpTest, Napot) {
  hart.pmpaddr[0] = napot(0x80010000, 0x10000);
  hart.pmpcfg[0] = NAPOT | X;
  EXPECT_FALSE(hart.pmp_allows(0x8000FFFC, 4, Access::kFetch, kPrivU));
  EXPECT_TRUE(hart.pmp_allows(0x80010000, 4, Access::kFetch, kPrivU));
  EXPECT_TRUE(hart.pmp_allows(0x8001FFFC, 4, Access::kFetch, kPrivU));
  EXPECT_FALSE(hart.pmp_allows(0x80020000, 4, Access::kFetch, kPrivU));
  EXPECT_FALSE(hart.pmp_allows(0x80010000, 4, Access::kLoad, kPrivU));
  // Smallest NAPOT region: 8 bytes (pmpaddr ends in a single 0).
  hart.pmpaddr[1] = 0x80100000 >> 2;
  hart.pmpcfg[1] = NAPOT | R;
  EXPECT_TRUE(hart.pmp_allows(0x80100004, 4, Access::kLoad, kPrivS));
  EXPECT_FALSE(hart.pmp_allows(0x80100008, 4, Access::kLoad, kPrivS));
  // All ones: the whole address space.
  hart.pmpaddr[2] = (1ULL << 54) - 1;
  hart.pmpcfg[2] = NAPOT | R | W;
  EXPECT_TRUE(hart.pmp_allows(0, 8, Access::kStore, kPrivU));
  EXPECT_TRUE(hart.pmp_allows(0xFFFFFFFFFFF8ULL, 8, Access::kStore, kPrivU));
  EXPECT_FALSE(hart.pmp_allows(0x80010000, 4, Access::kStore, kPrivU));  // entry 0 wins
}

TEST_F(PmpTest, LowestEntryDecides) {
  hart.pmpaddr[0] = napot(0x80000000, 0x1000);
  hart.pmpcfg[0] = NAPOT | R;
  hart.pmpaddr[1] = napot(0x80000000, 0x1000000);
  hart.pmpcfg[1] = NAPOT | R | W | X;
  EXPECT_FALSE(hart.pmp_allows(0x80000800, 8, Access::kStore, kPrivS));
  EXPECT_TRUE(hart.pmp_allows(0x80001000, 8, Access::kStore, kPrivS));
  // An access straddling entry 0's end matches entry 0 partially: fails.
  EXPECT_FALSE(hart.pmp_allows(0x80000FFC, 8, Access::kLoad, kPrivS));
}

TEST_F(PmpTest, LockedEntriesBindMMode) {
  hart.pmpaddr[0] = napot(0x80000000, 0x1000);
  hart.pmpcfg[0] = NAPOT | R;
  EXPECT_TRUE(hart.pmp_allows(0x80000000, 8, Access::kStore, kPrivM));
  hart.pmpcfg[0] |= L;
  EXPECT_FALSE(hart.pmp_allows(0x80000000, 8, Access::kStore, kPrivM));
  EXPECT_FALSE(hart.pmp_allows(0x80000000, 4, Access::kFetch, kPrivM));
  EXPECT_TRUE(hart.pmp_allows(0x80000000, 8, Access::kLoad, kPrivM));
  EXPECT_TRUE(hart.pmp_allows(0x80001000, 8, Access::kStore, kPrivM));  // no match
}

TEST_F(PmpTest, PageUniformity) {
  hart.pmpaddr[0] = napot(0x80000000, 0x10000);
  hart.pmpcfg[0] = NAPOT | R | W | X;
  EXPECT_TRUE(hart.pmp_page_uniform(0x80000123, kPrivS));
  EXPECT_TRUE(hart.pmp_page_uniform(0x80020000, kPrivS));  // no entry touches it
  // A small locked region in the middle of a page splits it.
  hart.pmpaddr[0] = napot(0x80000800, 0x100);
  hart.pmpcfg[0] = NAPOT | R | L;
  hart.pmpaddr[1] = (1ULL << 54) - 1;
  hart.pmpcfg[1] = NAPOT | R | W | X;
  EXPECT_FALSE(hart.pmp_page_uniform(0x80000000, kPrivS));
  EXPECT_FALSE(hart.pmp_page_uniform(0x80000FFF, kPrivM));
  EXPECT_TRUE(hart.pmp_page_uniform(0x80001000, kPrivS));
  // TOR boundary inside a page.
  hart.reset(0);
  hart.pmpaddr[0] = 0x80000800 >> 2;
  hart.pmpcfg[0] = TOR | R | W;
  EXPECT_FALSE(hart.pmp_page_uniform(0x80000000, kPrivU));
  EXPECT_TRUE(hart.pmp_page_uniform(0x7FFFF000, kPrivU));
  EXPECT_TRUE(hart.pmp_page_uniform(0x80001000, kPrivU));
  // A higher-priority entry covering the whole page hides a boundary of a later entry.
  hart.pmpaddr[1] = napot(0x80000000, 0x1000);
  hart.pmpcfg[1] = NAPOT | R;
  std::swap(hart.pmpaddr[0], hart.pmpaddr[1]);
  std::swap(hart.pmpcfg[0], hart.pmpcfg[1]);  // entry 0 = page NAPOT, entry 1 = TOR from it
  EXPECT_TRUE(hart.pmp_page_uniform(0x80000000, kPrivU));
}

}  // namespace
}  // namespace nimbus::cpu
