#include <gtest/gtest.h>

#include <map>

#include "devices/plic/plic.h"
#include "devices/state_test_util.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT

constexpr uint64_t kEnable1 = Plic::kEnableBase + Plic::kEnableStride;       // hart 0 S
constexpr uint64_t kClaim1 = Plic::kContextBase + Plic::kContextStride + 4;  // hart 0 S

struct PlicBox {
  std::map<unsigned, bool> out;
  Plic plic{2, [this](unsigned c, bool l) { out[c] = l; }};
  uint32_t rd(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(plic.read(off, 4, v));
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(plic.write(off, 4, v)); }
};

TEST(PlicState, RoundTripClaimStillCompletes) {
  PlicBox a;
  a.wr(4 * 10, 3);
  a.wr(4 * 40, 5);
  a.wr(kEnable1, 1u << 10);
  a.wr(kEnable1 + 4, 1u << 8);  // source 40
  a.plic.set_source_level(10, true);
  a.plic.set_source_level(40, true);
  EXPECT_EQ(a.rd(kClaim1), 40u);  // claimed, in service, line still high
  EXPECT_TRUE(a.out[1]);          // 10 still pending
  const std::vector<uint8_t> state = save(a.plic);

  PlicBox b;
  ASSERT_TRUE(load(b.plic, state).ok());
  EXPECT_TRUE(b.out[1]);  // output recomputed and driven
  EXPECT_FALSE(b.out.count(0));
  EXPECT_EQ(b.rd(Plic::kPendingBase), 1u << 10);
  EXPECT_EQ(b.rd(Plic::kPendingBase + 4), 0u);  // 40 is in service, not pending
  EXPECT_EQ(b.rd(kClaim1), 10u);
  EXPECT_FALSE(b.out[1]);
  b.wr(kClaim1, 40);      // the completion of the claim made before the snapshot
  EXPECT_TRUE(b.out[1]);  // 40's line is still high: requested again
  EXPECT_EQ(b.rd(kClaim1), 40u);
  b.wr(kClaim1, 40);
  b.wr(kClaim1, 10);
  b.plic.set_source_level(10, false);
  b.plic.set_source_level(40, false);
  EXPECT_FALSE(b.out[1]);
  EXPECT_EQ(b.rd(kClaim1), 0u);
}

TEST(PlicState, RefusesCorruptState) {
  PlicBox a;
  a.wr(4 * 5, 2);
  const std::vector<uint8_t> state = save(a.plic);
  const size_t header = 8 + 4 + 8;  // "plic" blob and section length
  std::vector<uint8_t> bad = state;
  bad[header + 4 + 4 * 5] = 9;  // priority of source 5
  PlicBox b;
  Status s = load(b.plic, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("plic"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("priority"), std::string::npos) << s.message();

  bad = state;
  bad[header] = 6;  // context count
  s = load(b.plic, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("contexts"), std::string::npos) << s.message();

  expect_truncations_refused(state, "plic", [](StateReader& r) {
    PlicBox c;
    c.plic.load_state(r);
  });
  load_garbage(state, [](StateReader& r) {
    PlicBox c;
    c.plic.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
