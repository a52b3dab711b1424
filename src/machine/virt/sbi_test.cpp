#include "machine/virt/sbi.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mem/bus.h"

namespace nimbus::machine::virt {
namespace {

class FakePlatform : public SbiPlatform {
 public:
  unsigned hart_count() const override { return 4; }
  void set_timer(unsigned hart, uint64_t value) override { timers.push_back({hart, value}); }
  void send_ipi(unsigned hart) override { ipis.push_back(hart); }
  void remote_sfence(unsigned, unsigned hart, const SfenceRequest& what) override {
    fences.push_back(hart);
    fence_requests.push_back(what);
  }
  int64_t hart_start(unsigned hart, uint64_t addr, uint64_t) override {
    started.push_back({hart, addr});
    return kSbiSuccess;
  }
  int64_t hart_stop(unsigned) override { return kSbiSuccess; }
  int64_t hart_status(unsigned hart) override { return hart == 0 ? kHartStarted : kHartStopped; }
  void system_reset(uint32_t type, uint32_t reason) override {
    resets.push_back(type * 10 + reason);
  }
  void console_putchar(uint8_t c) override { console += static_cast<char>(c); }
  int console_getchar() override { return -1; }

  std::vector<std::pair<unsigned, uint64_t>> timers, started;
  std::vector<unsigned> ipis, fences, resets;
  std::vector<SfenceRequest> fence_requests;
  std::string console;
};

class SbiTest : public ::testing::Test {
 protected:
  SbiTest() : bus_(0x80000000, 1 << 16), hart_(bus_, 1) { hart_.priv = cpu::kPrivS; }
  // Makes an SBI call and returns {a0, a1}.
  std::pair<int64_t, uint64_t> call(uint64_t ext, uint64_t fid, uint64_t a0 = 0, uint64_t a1 = 0,
                                    uint64_t a2 = 0) {
    hart_.x[17] = ext;
    hart_.x[16] = fid;
    hart_.x[10] = a0;
    hart_.x[11] = a1;
    hart_.x[12] = a2;
    sbi_call(hart_, p_);
    return {static_cast<int64_t>(hart_.x[10]), hart_.x[11]};
  }
  mem::Bus bus_;
  cpu::Hart hart_;
  FakePlatform p_;
};

TEST_F(SbiTest, BaseExtension) {
  EXPECT_EQ(call(0x10, 0), std::make_pair(int64_t{0}, kSbiSpecVersion));
  EXPECT_EQ(call(0x10, 1).second, kSbiImplId);
  EXPECT_EQ(call(0x10, 3, 0x735049).second, 1u);  // IPI present
  EXPECT_EQ(call(0x10, 3, 0x48534d).second, 1u);  // HSM present
  EXPECT_EQ(call(0x10, 3, 0x504d55).second, 0u);  // PMU absent
  EXPECT_EQ(call(0x10, 99).first, kSbiErrNotSupported);
  EXPECT_EQ(call(0x12345678, 0).first, kSbiErrNotSupported);
}

TEST_F(SbiTest, TimerGoesToTheCallingHart) {
  EXPECT_EQ(call(0x54494d45, 0, 123456).first, kSbiSuccess);
  ASSERT_EQ(p_.timers.size(), 1u);
  EXPECT_EQ(p_.timers[0], std::make_pair(1u, uint64_t{123456}));
}

TEST_F(SbiTest, IpiHartMasks) {
  EXPECT_EQ(call(0x735049, 0, 0b101, 1).first, kSbiSuccess);  // harts 1 and 3
  EXPECT_EQ(p_.ipis, (std::vector<unsigned>{1, 3}));
  p_.ipis.clear();
  EXPECT_EQ(call(0x735049, 0, 0, ~0ull).first, kSbiSuccess);  // base -1: every hart
  EXPECT_EQ(p_.ipis.size(), 4u);
  p_.ipis.clear();
  EXPECT_EQ(call(0x735049, 0, 0b11, 3).first, kSbiErrInvalidParam);  // hart 4 does not exist
  EXPECT_TRUE(p_.ipis.empty());                                      // nothing sent on error
}

TEST_F(SbiTest, RemoteSfenceReachesTargets) {
  hart_.x[13] = 0x3000;  // size
  EXPECT_EQ(call(0x52464e43, 1, 0b1001, 0, 0x7000).first, kSbiSuccess);
  EXPECT_EQ(p_.fences, (std::vector<unsigned>{0, 3}));
  ASSERT_EQ(p_.fence_requests.size(), 2u);
  EXPECT_EQ(p_.fence_requests[0].start, 0x7000u);
  EXPECT_EQ(p_.fence_requests[0].size, 0x3000u);
  EXPECT_FALSE(p_.fence_requests[0].has_asid);
  p_.fence_requests.clear();
  hart_.x[13] = ~0ULL;
  hart_.x[14] = 42;  // ASID
  EXPECT_EQ(call(0x52464e43, 2, 0b10, 0, 0).first, kSbiSuccess);
  ASSERT_EQ(p_.fence_requests.size(), 1u);
  EXPECT_EQ(p_.fence_requests[0].size, ~0ULL);
  EXPECT_TRUE(p_.fence_requests[0].has_asid);
  EXPECT_EQ(p_.fence_requests[0].asid, 42u);
  EXPECT_EQ(call(0x52464e43, 3).first, kSbiErrNotSupported);  // hypervisor fences
}

TEST_F(SbiTest, HartStateManagement) {
  EXPECT_EQ(call(0x48534d, 0, 2, 0x80200000, 7).first, kSbiSuccess);
  ASSERT_EQ(p_.started.size(), 1u);
  EXPECT_EQ(p_.started[0], std::make_pair(2u, uint64_t{0x80200000}));
  EXPECT_EQ(call(0x48534d, 0, 9, 0x80200000).first, kSbiErrInvalidParam);
  EXPECT_EQ(call(0x48534d, 2, 0), std::make_pair(int64_t{0}, uint64_t{kHartStarted}));
  EXPECT_EQ(call(0x48534d, 2, 3).second, uint64_t{kHartStopped});
  EXPECT_EQ(call(0x48534d, 2, 4).first, kSbiErrInvalidParam);
}

TEST_F(SbiTest, SystemResetAndLegacyCalls) {
  EXPECT_EQ(call(0x53525354, 0, 7).first, kSbiErrInvalidParam);
  EXPECT_TRUE(p_.resets.empty());
  call(0x53525354, 0, 1, 0);  // cold reboot
  EXPECT_EQ(p_.resets, (std::vector<unsigned>{10}));
  call(0x01, 0, 'h', 0x5a5a);
  call(0x01, 0, 'i', 0x5a5a);
  EXPECT_EQ(p_.console, "hi");
  EXPECT_EQ(hart_.x[11], 0x5a5au);     // legacy calls leave a1 alone
  EXPECT_EQ(call(0x02, 0).first, -1);  // no input
  hart_.set_interrupt_pending(cpu::kIrqSSoft, true);
  call(0x03, 0);  // legacy clear_ipi
  EXPECT_EQ(hart_.mip.load() & (1u << cpu::kIrqSSoft), 0u);
}

}  // namespace
}  // namespace nimbus::machine::virt
