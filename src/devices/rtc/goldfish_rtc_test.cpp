#include "devices/rtc/goldfish_rtc.h"

#include <gtest/gtest.h>

#include <vector>

namespace nimbus::devices {
namespace {

using R = GoldfishRtc;

struct RtcFixture : ::testing::Test {
  uint64_t host_ns = 0x0000'0017'8000'0005ull;
  std::vector<bool> irq_calls;
  bool irq = false;
  GoldfishRtc rtc{[this] { return host_ns; },
                  [this](bool l) {
                    irq = l;
                    irq_calls.push_back(l);
                  }};

  uint32_t rd(uint64_t off) {
    uint64_t v = 0xdeadbeefcafe;
    EXPECT_TRUE(rtc.read(off, 4, v));
    EXPECT_LE(v, 0xffffffffull);
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(rtc.write(off, 4, v)); }
  uint64_t read_time() {
    const uint64_t lo = rd(R::kTimeLow);
    return (static_cast<uint64_t>(rd(R::kTimeHigh)) << 32) | lo;
  }
};

TEST_F(RtcFixture, TimeLowLatchesHigh) {
  EXPECT_EQ(read_time(), host_ns);
  EXPECT_EQ(rd(R::kTimeLow), 0x80000005u);
  host_ns = 0x0000'0018'0000'0001ull;  // the high half moves on after the latch
  EXPECT_EQ(rd(R::kTimeHigh), 0x17u);  // still the latched value
  EXPECT_EQ(rd(R::kTimeLow), 1u);
  EXPECT_EQ(rd(R::kTimeHigh), 0x18u);
  uint64_t v = 0;
  EXPECT_TRUE(rtc.read(R::kTimeLow, 8, v));
  EXPECT_EQ(v, host_ns);
}

TEST_F(RtcFixture, GuestSetsTheClockLikeLinux) {
  // rtc-goldfish's set_time writes TIME_HIGH then TIME_LOW.
  const uint64_t target = 1'700'000'000'000'000'000ull;
  wr(R::kTimeHigh, static_cast<uint32_t>(target >> 32));
  wr(R::kTimeLow, static_cast<uint32_t>(target));
  EXPECT_EQ(read_time(), target);
  EXPECT_EQ(rtc.time_ns(), target);
  host_ns += 1234;  // and the clock keeps running
  EXPECT_EQ(read_time(), target + 1234);
  // Setting it back in time works too.
  wr(R::kTimeHigh, 0);
  wr(R::kTimeLow, 10);
  EXPECT_EQ(read_time(), 10u);
  host_ns += 5;
  EXPECT_EQ(read_time(), 15u);
}

TEST_F(RtcFixture, AlarmFiresOnPollAndInterruptIsAcknowledged) {
  EXPECT_EQ(rtc.next_alarm_host_ns(), UINT64_MAX);
  const uint64_t alarm = host_ns + 1000;
  wr(R::kAlarmHigh, static_cast<uint32_t>(alarm >> 32));
  wr(R::kAlarmLow, static_cast<uint32_t>(alarm));
  wr(R::kIrqEnabled, 1);
  EXPECT_EQ(rd(R::kAlarmStatus), 1u);
  EXPECT_EQ(rd(R::kIrqEnabled), 1u);
  EXPECT_EQ(rd(R::kAlarmLow), static_cast<uint32_t>(alarm));
  EXPECT_EQ(rd(R::kAlarmHigh), static_cast<uint32_t>(alarm >> 32));
  EXPECT_EQ(rtc.next_alarm_host_ns(), alarm);
  rtc.poll();
  EXPECT_TRUE(irq_calls.empty());  // not due yet
  host_ns += 999;
  rtc.poll();
  EXPECT_TRUE(irq_calls.empty());
  host_ns += 1;
  rtc.poll();
  EXPECT_TRUE(irq);
  EXPECT_EQ(rd(R::kAlarmStatus), 0u);  // a fired alarm is no longer armed
  EXPECT_EQ(rtc.next_alarm_host_ns(), UINT64_MAX);
  wr(R::kClearInterrupt, 1);
  EXPECT_FALSE(irq);
  EXPECT_EQ(irq_calls, (std::vector<bool>{true, false}));
}

TEST_F(RtcFixture, AlarmRespectsGuestClockAndEnable) {
  wr(R::kTimeHigh, 0);
  wr(R::kTimeLow, 100);  // guest time is now 100 ns
  wr(R::kAlarmHigh, 0);
  wr(R::kAlarmLow, 150);
  EXPECT_EQ(rtc.next_alarm_host_ns(), host_ns + 50);
  host_ns += 50;
  rtc.poll();
  EXPECT_FALSE(irq);  // IRQ_ENABLED is 0: status set, line low
  wr(R::kIrqEnabled, 1);
  EXPECT_TRUE(irq);
  wr(R::kIrqEnabled, 0);
  EXPECT_FALSE(irq);
  wr(R::kClearInterrupt, 1);
  wr(R::kIrqEnabled, 1);
  EXPECT_FALSE(irq);
  // An alarm in the past fires as soon as it is armed.
  wr(R::kAlarmLow, 10);
  EXPECT_TRUE(irq);
  wr(R::kClearInterrupt, 1);
  EXPECT_FALSE(irq);
  // CLEAR_ALARM disarms.
  wr(R::kAlarmLow, 1000);
  EXPECT_EQ(rd(R::kAlarmStatus), 1u);
  wr(R::kClearAlarm, 1);
  EXPECT_EQ(rd(R::kAlarmStatus), 0u);
  host_ns += 10000;
  rtc.poll();
  EXPECT_FALSE(irq);
}

TEST_F(RtcFixture, HostileAccessesAreSafe) {
  uint64_t v = 1;
  EXPECT_FALSE(rtc.read(R::kSize, 4, v));
  EXPECT_FALSE(rtc.write(~0ull - 3, 4, 1));
  EXPECT_FALSE(rtc.read(R::kTimeLow, 1, v));
  EXPECT_FALSE(rtc.read(R::kTimeLow + 2, 4, v));
  EXPECT_TRUE(rtc.read(0x800, 4, v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(rtc.write(0x800, 8, ~0ull));
  EXPECT_EQ(read_time(), host_ns);
  // An alarm far in the future relative to a wrapped guest clock does not overflow.
  wr(R::kAlarmHigh, 0xffffffff);
  wr(R::kAlarmLow, 0xffffffff);
  EXPECT_GE(rtc.next_alarm_host_ns(), host_ns);
  rtc.poll();
  EXPECT_FALSE(irq);
}

}  // namespace
}  // namespace nimbus::devices
