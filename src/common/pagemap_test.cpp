#include "common/pagemap.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

namespace nimbus {
namespace {

TEST(Pagemap, TellsTouchedPagesFromUntouchedOnes) {
  constexpr size_t kLen = 64 * 4096;
  auto* p = static_cast<uint8_t*>(
      mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  p[3 * 4096] = 1;
  p[40 * 4096 + 17] = 2;
  auto touched = touched_pages(p, kLen);
  if (!touched) GTEST_SKIP() << "/proc/self/pagemap is not readable here";
  ASSERT_EQ(touched->size(), 64u);
  for (size_t i = 0; i < 64; i++) EXPECT_EQ((*touched)[i], i == 3 || i == 40) << "page " << i;
  EXPECT_FALSE(touched_pages(p + 1, 4096).has_value()) << "an unaligned base is refused";
  munmap(p, kLen);
}

}  // namespace
}  // namespace nimbus
