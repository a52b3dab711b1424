#include <gtest/gtest.h>

#include <vector>

#include "devices/rtc/goldfish_rtc.h"
#include "devices/state_test_util.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT
using R = GoldfishRtc;

struct RtcBox {
  uint64_t host_ns = 1'000'000'000'000ull;
  std::vector<bool> irq_calls;
  GoldfishRtc rtc{[this] { return host_ns; }, [this](bool l) { irq_calls.push_back(l); }};
  uint32_t rd(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(rtc.read(off, 4, v));
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(rtc.write(off, 4, v)); }
};

TEST(RtcState, RoundTripAlarmAndInterrupt) {
  RtcBox a;
  a.wr(R::kTimeHigh, 0x300);  // the guest sets its clock
  a.wr(R::kIrqEnabled, 1);
  const uint64_t t = a.rtc.time_ns();
  a.wr(R::kAlarmHigh, static_cast<uint32_t>((t + 100) >> 32));
  a.wr(R::kAlarmLow, static_cast<uint32_t>(t + 100));
  EXPECT_EQ(a.rd(R::kAlarmStatus), 1u);
  const std::vector<uint8_t> state = save(a.rtc);

  RtcBox b;
  ASSERT_TRUE(load(b.rtc, state).ok());
  EXPECT_TRUE(b.irq_calls.empty());
  EXPECT_EQ(b.rtc.time_ns(), t);  // same host clock, same guest offset
  EXPECT_EQ(b.rd(R::kAlarmStatus), 1u);
  EXPECT_EQ(b.rd(R::kIrqEnabled), 1u);
  b.host_ns += 100;
  b.rtc.poll();
  EXPECT_EQ(b.irq_calls, std::vector<bool>{true});
  b.wr(R::kClearInterrupt, 1);
  EXPECT_EQ(b.irq_calls.back(), false);

  // A fired, unacknowledged alarm: the line comes back up at load.
  RtcBox c;
  ASSERT_TRUE(load(c.rtc, save(b.rtc)).ok());
  EXPECT_TRUE(c.irq_calls.empty());
  b.host_ns += 1;
  b.wr(R::kAlarmLow, 0);  // in the past: fires at once
  RtcBox d;
  ASSERT_TRUE(load(d.rtc, save(b.rtc)).ok());
  EXPECT_EQ(d.irq_calls, std::vector<bool>{true});
}

TEST(RtcState, RefusesTruncatedState) {
  RtcBox a;
  const std::vector<uint8_t> state = save(a.rtc);
  expect_truncations_refused(state, "goldfish-rtc", [](StateReader& r) {
    RtcBox c;
    c.rtc.load_state(r);
  });
  load_garbage(state, [](StateReader& r) {
    RtcBox c;
    c.rtc.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
