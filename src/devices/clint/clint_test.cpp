#include "devices/clint/clint.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>
#include <vector>

namespace nimbus::devices {
namespace {

struct ClintFixture : ::testing::Test {
  uint64_t ticks = 1000;
  std::map<unsigned, bool> msip, mtip;
  std::vector<std::pair<unsigned, bool>> mtip_calls;
  Clint clint{2, [this] { return ticks; }, [this](unsigned h, bool l) { msip[h] = l; },
              [this](unsigned h, bool l) {
                mtip[h] = l;
                mtip_calls.push_back({h, l});
              }};

  uint64_t rd(uint64_t off, unsigned size) {
    uint64_t v = 0xdeadbeef;
    EXPECT_TRUE(clint.read(off, size, v));
    return v;
  }
};

TEST_F(ClintFixture, MsipOnlyBitZeroAndDrivesLine) {
  EXPECT_TRUE(clint.write(0x4, 4, 0xffffffff));  // hart 1
  EXPECT_EQ(rd(0x4, 4), 1u);
  EXPECT_EQ(rd(0x0, 4), 0u);
  EXPECT_TRUE(msip[1]);
  EXPECT_FALSE(msip.count(0));
  EXPECT_TRUE(clint.write(0x4, 4, 2));  // bit 0 clear
  EXPECT_FALSE(msip[1]);
  EXPECT_EQ(rd(0x4, 4), 0u);
  // Hart 2 does not exist: reads zero, writes ignored.
  EXPECT_TRUE(clint.write(0x8, 4, 1));
  EXPECT_EQ(rd(0x8, 4), 0u);
  EXPECT_FALSE(msip.count(2));
  // 64-bit access covering harts 0 and 1.
  EXPECT_TRUE(clint.write(0x0, 8, 0x0000000100000001ull));
  EXPECT_TRUE(msip[0]);
  EXPECT_TRUE(msip[1]);
  EXPECT_EQ(rd(0x0, 8), 0x0000000100000001ull);
}

TEST_F(ClintFixture, MtimeFollowsClockAndWritesSetOffset) {
  EXPECT_EQ(clint.mtime(), 1000u);
  EXPECT_EQ(rd(Clint::kMtime, 8), 1000u);
  ticks = 5000;
  EXPECT_EQ(rd(Clint::kMtime, 8), 5000u);
  EXPECT_TRUE(clint.write(Clint::kMtime, 8, 0x1'0000'0000ull));
  EXPECT_EQ(clint.mtime(), 0x1'0000'0000ull);
  ticks += 7;
  EXPECT_EQ(rd(Clint::kMtime, 8), 0x1'0000'0007ull);
  EXPECT_EQ(rd(Clint::kMtime, 4), 7u);
  EXPECT_EQ(rd(Clint::kMtime + 4, 4), 1u);
  // 32-bit write of the high half keeps the low half running.
  EXPECT_TRUE(clint.write(Clint::kMtime + 4, 4, 3));
  EXPECT_EQ(clint.mtime(), 0x3'0000'0007ull);
  // Setting mtime backwards works too (offset wraps modulo 2^64).
  EXPECT_TRUE(clint.write(Clint::kMtime, 8, 10));
  EXPECT_EQ(clint.mtime(), 10u);
  ticks += 5;
  EXPECT_EQ(clint.mtime(), 15u);
}

TEST_F(ClintFixture, MtimecmpResetsToMaxAndDrivesTimer) {
  EXPECT_EQ(rd(0x4000, 8), UINT64_MAX);
  EXPECT_EQ(rd(0x4008, 8), UINT64_MAX);
  EXPECT_EQ(clint.timer_deadline(0), UINT64_MAX);
  clint.update_timer(0);
  EXPECT_FALSE(mtip[0]);

  // Writing mtimecmp re-evaluates immediately.
  EXPECT_TRUE(clint.write(0x4000, 8, 1500));
  EXPECT_FALSE(mtip[0]);
  EXPECT_EQ(clint.timer_deadline(0), 1500u);
  ticks = 1500;
  clint.update_timer(0);
  EXPECT_TRUE(mtip[0]);
  EXPECT_FALSE(mtip[1]);
  // Moving the compare value into the future lowers the line.
  EXPECT_TRUE(clint.write(0x4000, 8, 2000));
  EXPECT_FALSE(mtip[0]);

  // 32-bit halves, the way RV32 software writes it.
  EXPECT_TRUE(clint.write(0x4008 + 4, 4, 0xffffffff));
  EXPECT_TRUE(clint.write(0x4008, 4, 100));
  EXPECT_EQ(rd(0x4008, 8), 0xffffffff00000064ull);
  EXPECT_TRUE(clint.write(0x4008 + 4, 4, 0));
  EXPECT_EQ(rd(0x4008, 4), 100u);
  EXPECT_EQ(rd(0x400c, 4), 0u);
  EXPECT_TRUE(mtip[1]);  // 1500 >= 100

  // Writing mtime re-evaluates every hart.
  EXPECT_TRUE(clint.write(Clint::kMtime, 8, 0));
  EXPECT_FALSE(mtip[0]);
  EXPECT_FALSE(mtip[1]);
}

TEST_F(ClintFixture, SetTimecmpForSbi) {
  clint.set_timecmp(1, 999);
  EXPECT_TRUE(mtip[1]);
  EXPECT_EQ(rd(0x4008, 8), 999u);
  clint.set_timecmp(1, UINT64_MAX);
  EXPECT_FALSE(mtip[1]);
  mtip_calls.clear();
  clint.set_timecmp(7, 0);  // no such hart
  clint.update_timer(7);
  EXPECT_TRUE(mtip_calls.empty());
  EXPECT_EQ(clint.timer_deadline(7), UINT64_MAX);
}

TEST_F(ClintFixture, HostileAccessesAreSafe) {
  uint64_t v = 0;
  EXPECT_FALSE(clint.read(Clint::kSize, 4, v));
  EXPECT_FALSE(clint.read(UINT64_MAX - 3, 4, v));
  EXPECT_FALSE(clint.write(Clint::kSize - 4, 8, 1));
  EXPECT_FALSE(clint.read(0x4001, 4, v));  // misaligned
  EXPECT_FALSE(clint.read(0x0, 3, v));     // odd size
  // Reserved space in range reads zero and ignores writes.
  EXPECT_TRUE(clint.write(0xc000, 8, ~0ull));
  EXPECT_EQ(rd(0xc000, 8), 0u);
  EXPECT_EQ(rd(0xbff0, 8), 0u);  // mtimecmp slot of a non-existent hart
  // Byte access to mtimecmp.
  EXPECT_TRUE(clint.write(0x4000, 1, 0x12));
  EXPECT_EQ(rd(0x4000, 8), 0xffffffffffffff12ull);
  EXPECT_EQ(rd(0x4001, 1), 0xffu);
}

TEST(Clint, TooManyHartsIsClamped) {
  Clint clint(
      100000, [] { return 0; }, [](unsigned, bool) {}, [](unsigned, bool) {});
  EXPECT_EQ(clint.num_harts(), Clint::kMaxHarts);
  uint64_t v = 0;
  EXPECT_TRUE(clint.read(0x4000 + 8 * (Clint::kMaxHarts - 1), 8, v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_TRUE(clint.read(Clint::kMtime, 8, v));
  EXPECT_EQ(v, 0u);
}

}  // namespace
}  // namespace nimbus::devices
