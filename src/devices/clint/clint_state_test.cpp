#include <gtest/gtest.h>

#include <map>

#include "devices/clint/clint.h"
#include "devices/state_test_util.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

struct ClintBox {
  uint64_t ticks = 1000;
  std::map<unsigned, bool> msip, mtip;
  Clint clint;
  explicit ClintBox(unsigned harts)
      : clint(
            harts, [this] { return ticks; }, [this](unsigned h, bool l) { msip[h] = l; },
            [this](unsigned h, bool l) { mtip[h] = l; }) {}
};

TEST(ClintState, RoundTrip) {
  ClintBox a(2);
  ASSERT_TRUE(a.clint.write(Clint::kMsipBase + 4, 4, 1));        // hart 1 msip
  ASSERT_TRUE(a.clint.write(Clint::kMtimecmpBase, 8, 5000));     // hart 0
  ASSERT_TRUE(a.clint.write(Clint::kMtimecmpBase + 8, 8, 900));  // hart 1: due
  EXPECT_TRUE(a.mtip[1]);
  ASSERT_TRUE(a.clint.write(Clint::kMtime, 8, 1500));  // the guest moves mtime on
  a.ticks = 1200;
  const std::vector<uint8_t> state = save(a.clint);

  ClintBox b(2);
  b.ticks = 1200;  // the machine continues its time base
  ASSERT_TRUE(load(b.clint, state).ok());
  EXPECT_TRUE(b.msip[1]);
  EXPECT_FALSE(b.msip[0]);
  for (unsigned h = 0; h < 2; ++h) b.clint.update_timer(h);
  EXPECT_FALSE(b.mtip[0]);
  EXPECT_TRUE(b.mtip[1]);
  EXPECT_EQ(b.clint.timer_deadline(0), 5000u);
  EXPECT_EQ(b.clint.mtime(), a.clint.mtime());  // 1700: the guest's offset is kept
  uint64_t v = 0;
  ASSERT_TRUE(b.clint.read(Clint::kMsipBase + 4, 4, v));
  EXPECT_EQ(v, 1u);
  b.ticks = 4500;
  b.clint.update_timer(0);
  EXPECT_TRUE(b.mtip[0]);
  EXPECT_EQ(save(b.clint), state);
}

TEST(ClintState, RefusesOtherHartCountAndBadValues) {
  ClintBox a(2);
  const std::vector<uint8_t> state = save(a.clint);
  ClintBox three(3);
  const Status s = load(three.clint, state);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("clint"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("2 harts"), std::string::npos) << s.message();

  std::vector<uint8_t> bad = state;
  bad[bad.size() - 9] = 7;  // hart 1's msip
  ClintBox b(2);
  const Status s2 = load(b.clint, bad);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find("clint"), std::string::npos) << s2.message();

  expect_truncations_refused(state, "clint", [](StateReader& r) {
    ClintBox c(2);
    c.clint.load_state(r);
  });
  load_garbage(state, [](StateReader& r) {
    ClintBox c(2);
    c.clint.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
