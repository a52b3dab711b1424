#include "mem/dirty_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "mem/bus.h"

namespace nimbus::mem {
namespace {

bool bit(const std::vector<uint64_t>& b, uint64_t page) {
  return (b[page / 64] >> (page % 64)) & 1;
}

uint64_t popcount(const std::vector<uint64_t>& b) {
  uint64_t n = 0;
  for (uint64_t w : b) n += __builtin_popcountll(w);
  return n;
}

TEST(DirtyLog, SizesRoundUp) {
  DirtyLog log((130 << 12) + 1);
  EXPECT_EQ(log.pages(), 131u);
  EXPECT_EQ(log.words(), 3u);
  std::vector<uint64_t> b;
  log.take(b);
  EXPECT_EQ(b.size(), 3u);
}

TEST(DirtyLog, OffMarksNothing) {
  DirtyLog log(1 << 20);
  log.mark(0, 4096);
  log.mark(8192, 1);
  std::vector<uint64_t> b;
  log.take(b);
  EXPECT_EQ(popcount(b), 0u);
}

TEST(DirtyLog, MarksEveryPageOfARangeAndOnlyThose) {
  DirtyLog log(1 << 20);  // 256 pages
  log.set_enabled(true);
  log.mark(4095, 2);               // pages 0 and 1
  log.mark(10 * 4096 + 17, 1);     // page 10
  log.mark(60 * 4096, 10 * 4096);  // pages 60..69, across a word boundary
  log.mark(255 * 4096, 1 << 20);   // clipped to the last page
  log.mark(1 << 20, 4096);         // past the end: nothing
  log.mark(100 * 4096, 0);         // empty: nothing
  std::vector<uint64_t> b;
  log.take(b);
  std::vector<uint64_t> want = {0, 1, 10, 255};
  for (uint64_t p = 60; p < 70; p++) want.push_back(p);
  EXPECT_EQ(popcount(b), want.size());
  for (uint64_t p : want) EXPECT_TRUE(bit(b, p)) << p;
  // Taken means cleared.
  log.take(b);
  EXPECT_EQ(popcount(b), 0u);
}

TEST(DirtyLog, WholeWordsAndClear) {
  DirtyLog log(256 << 12);
  log.set_enabled(true);
  log.mark(0, 256 << 12);
  EXPECT_TRUE(log.test(0));
  EXPECT_TRUE(log.test(255 << 12));
  std::vector<uint64_t> b;
  log.take(b);
  for (uint64_t w : b) EXPECT_EQ(w, ~uint64_t{0});
  log.mark(5 << 12, 1);
  log.clear();
  log.take(b);
  EXPECT_EQ(popcount(b), 0u);
}

TEST(DirtyLog, ConcurrentMarksLandInExactlyOneTake) {
  // Every page is marked once by one of four threads while takes run: the union of the
  // takes holds every page (none lost between exchange and clear).
  constexpr uint64_t kPages = 4096;
  DirtyLog log(kPages << 12);
  log.set_enabled(true);
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      while (!go.load()) {
      }
      for (uint64_t p = t; p < kPages; p += 4) log.mark(p << 12, 1);
    });
  }
  std::vector<uint64_t> all(log.words(), 0), b;
  uint64_t total = 0;
  go = true;
  for (int i = 0; i < 200; i++) {
    log.take(b);
    for (size_t w = 0; w < b.size(); w++) {
      EXPECT_EQ(all[w] & b[w], 0u);  // marked once: in one take only
      all[w] |= b[w];
    }
    total += popcount(b);
  }
  for (auto& t : ts) t.join();
  log.take(b);
  for (size_t w = 0; w < b.size(); w++) all[w] |= b[w];
  total += popcount(b);
  EXPECT_EQ(total, kPages);
  EXPECT_EQ(popcount(all), kPages);
}

TEST(DirtyLog, BusWriteToRamMarksAndMarkDirtyTakesHostPointers) {
  Bus bus(0x80000000, 1 << 20);
  ASSERT_TRUE(bus.write(0x80003000, 8, 1));  // off: not marked
  bus.dirty_log().set_enabled(true);
  ASSERT_TRUE(bus.write(0x80005ffc, 4, 1));
  bus.mark_dirty(bus.ram_ptr(0x80009000, 1), 4097);  // pages 9 and 10
  EXPECT_FALSE(bus.write(0x10000000, 4, 1));         // nothing there: nothing marked
  std::vector<uint64_t> b;
  bus.dirty_log().take(b);
  EXPECT_EQ(popcount(b), 3u);
  EXPECT_TRUE(bit(b, 5));
  EXPECT_TRUE(bit(b, 9));
  EXPECT_TRUE(bit(b, 10));
}

}  // namespace
}  // namespace nimbus::mem
