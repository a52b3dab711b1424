#include <gtest/gtest.h>

#include <cstdint>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

class TrapTest : public ::testing::Test {
 protected:
  mem::Bus bus{0x80000000, 16 << 20};
  Hart hart{bus, 0};

  void SetUp() override {
    hart.mtvec = 0x80000100;
    hart.stvec = 0x80000200;
    hart.pc = 0x80001234;
  }
  unsigned mpp() const { return (hart.mstatus_ & mstatus::kMPP) >> mstatus::kMPPShift; }
};

TEST_F(TrapTest, ExceptionInMGoesToM) {
  hart.medeleg = ~0ULL;  // delegation never applies to traps taken in M
  hart.mstatus_ |= mstatus::kMIE;
  hart.waiting = true;
  hart.take_trap(kIllegalInsn, 0xBAD);
  EXPECT_EQ(hart.priv, kPrivM);
  EXPECT_EQ(hart.mcause, uint64_t{kIllegalInsn});
  EXPECT_EQ(hart.mepc, 0x80001234u);
  EXPECT_EQ(hart.mtval, 0xBADu);
  EXPECT_EQ(hart.next_pc, 0x80000100u);
  EXPECT_EQ(mpp(), 3u);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kMPIE);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kMIE);
  EXPECT_TRUE(hart.break_block);
  EXPECT_FALSE(hart.waiting);
  EXPECT_EQ(hart.scause, 0u);
}

TEST_F(TrapTest, ExceptionFromUDelegatedToS) {
  hart.priv = kPrivU;
  hart.medeleg = 1ULL << kEcallFromU;
  hart.mstatus_ |= mstatus::kSIE | mstatus::kSPP;
  hart.tlb_fetch[3].tag = 9;
  hart.take_trap(kEcallFromU, 0);
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.scause, uint64_t{kEcallFromU});
  EXPECT_EQ(hart.sepc, 0x80001234u);
  EXPECT_EQ(hart.stval, 0u);
  EXPECT_EQ(hart.next_pc, 0x80000200u);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSPP);  // came from U
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSPIE);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSIE);
  EXPECT_EQ(hart.mcause, 0u);
  // No flush on a privilege change: entries are tagged with their mode, and the hart now
  // looks up S-mode ones.
  EXPECT_EQ(hart.tlb_fetch[3].tag, 9u);
  EXPECT_EQ(hart.fetch_ctx, (uint64_t{kPrivS} << kTlbCtxShift) | hart.tlb_space_ctx);
}

TEST_F(TrapTest, ExceptionFromSNotDelegatedGoesToM) {
  hart.priv = kPrivS;
  hart.medeleg = 1ULL << kEcallFromU;
  hart.take_trap(kEcallFromS, 0);
  EXPECT_EQ(hart.priv, kPrivM);
  EXPECT_EQ(mpp(), 1u);
  EXPECT_EQ(hart.mcause, uint64_t{kEcallFromS});
  EXPECT_FALSE(hart.mstatus_ & mstatus::kMPIE);
}

TEST_F(TrapTest, DelegatedFromSSetsSpp) {
  hart.priv = kPrivS;
  hart.medeleg = 1ULL << kLoadPageFault;
  hart.take_trap(kLoadPageFault, 0x1000);
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSPP);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSPIE);
  EXPECT_EQ(hart.stval, 0x1000u);
}

TEST_F(TrapTest, VectoredInterruptsOnly) {
  hart.mtvec = 0x80000101;  // vectored
  hart.take_trap(kInterruptBit | kIrqMTimer, 0);
  EXPECT_EQ(hart.next_pc, 0x80000100u + 4 * 7);
  EXPECT_EQ(hart.mcause, kInterruptBit | kIrqMTimer);
  hart.take_trap(kBreakpoint, 0);  // exceptions use the base
  EXPECT_EQ(hart.next_pc, 0x80000100u);
  hart.priv = kPrivU;
  hart.mideleg = 1ULL << kIrqSExt;
  hart.stvec = 0x80000201;
  hart.take_trap(kInterruptBit | kIrqSExt, 0);
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.next_pc, 0x80000200u + 4 * 9);
  EXPECT_EQ(hart.scause, kInterruptBit | kIrqSExt);
}

TEST_F(TrapTest, NoInterruptWhenNothingPendingOrEnabled) {
  EXPECT_FALSE(hart.check_interrupts());
  hart.set_interrupt_pending(kIrqMTimer, true);
  hart.mstatus_ |= mstatus::kMIE;
  EXPECT_FALSE(hart.check_interrupts());  // not in mie
  hart.mie = 1ULL << kIrqMTimer;
  hart.mstatus_ &= ~mstatus::kMIE;
  EXPECT_FALSE(hart.check_interrupts());  // M-mode with MIE=0
  EXPECT_TRUE(hart.interrupt_wakeup_pending());
  hart.mstatus_ |= mstatus::kMIE;
  EXPECT_TRUE(hart.check_interrupts());
  EXPECT_EQ(hart.mcause, kInterruptBit | kIrqMTimer);
}

TEST_F(TrapTest, MInterruptsAlwaysEnabledBelowM) {
  hart.priv = kPrivS;
  hart.mie = 1ULL << kIrqMSoft;
  hart.set_interrupt_pending(kIrqMSoft, true);
  EXPECT_TRUE(hart.check_interrupts());  // MIE=0 but priv < M
  EXPECT_EQ(hart.priv, kPrivM);
  EXPECT_EQ(mpp(), 1u);
}

TEST_F(TrapTest, Priority) {
  hart.mstatus_ |= mstatus::kMIE;
  hart.mie = 0xAAA;
  for (unsigned irq : {kIrqSTimer, kIrqSSoft, kIrqSExt, kIrqMTimer, kIrqMSoft, kIrqMExt})
    hart.set_interrupt_pending(irq, true);
  const unsigned expected[] = {kIrqMExt, kIrqMSoft, kIrqMTimer, kIrqSExt, kIrqSSoft, kIrqSTimer};
  for (unsigned irq : expected) {
    hart.priv = kPrivM;
    hart.mstatus_ |= mstatus::kMIE;
    ASSERT_TRUE(hart.check_interrupts());
    EXPECT_EQ(hart.mcause, kInterruptBit | irq);
    hart.set_interrupt_pending(irq, false);
  }
  hart.mstatus_ |= mstatus::kMIE;
  EXPECT_FALSE(hart.check_interrupts());
}

TEST_F(TrapTest, DelegatedInterruptsNeverTakenInM) {
  hart.mideleg = 1ULL << kIrqSTimer;
  hart.mie = 1ULL << kIrqSTimer;
  hart.set_interrupt_pending(kIrqSTimer, true);
  hart.mstatus_ |= mstatus::kMIE | mstatus::kSIE;
  EXPECT_FALSE(hart.check_interrupts());
  hart.priv = kPrivS;
  hart.mstatus_ &= ~mstatus::kSIE;
  EXPECT_FALSE(hart.check_interrupts());  // S-mode needs SIE
  hart.mstatus_ |= mstatus::kSIE;
  EXPECT_TRUE(hart.check_interrupts());
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.scause, kInterruptBit | kIrqSTimer);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSPP);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSPIE);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSIE);
  hart.priv = kPrivU;  // in U, S-level interrupts are enabled regardless of SIE
  EXPECT_TRUE(hart.check_interrupts());
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSPP);
}

TEST_F(TrapTest, MLevelBeatsSLevelEvenWithLowerPriorityCode) {
  // SSI not delegated (targets M), SEI delegated (targets S): from U, M-level wins.
  hart.priv = kPrivU;
  hart.mideleg = 1ULL << kIrqSExt;
  hart.mie = (1ULL << kIrqSExt) | (1ULL << kIrqSSoft);
  hart.set_interrupt_pending(kIrqSExt, true);
  hart.set_interrupt_pending(kIrqSSoft, true);
  EXPECT_TRUE(hart.check_interrupts());
  EXPECT_EQ(hart.priv, kPrivM);
  EXPECT_EQ(hart.mcause, kInterruptBit | kIrqSSoft);
}

TEST_F(TrapTest, Mret) {
  hart.mepc = 0x80004000;
  hart.mstatus_ |= (1ULL << mstatus::kMPPShift) | mstatus::kMPIE | mstatus::kMPRV;
  hart.break_block = false;
  EXPECT_TRUE(hart.mret());
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.next_pc, 0x80004000u);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kMIE);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kMPIE);
  EXPECT_EQ(mpp(), 0u);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kMPRV);
  EXPECT_TRUE(hart.break_block);
  EXPECT_FALSE(hart.mret());  // illegal outside M
  hart.priv = kPrivM;
  hart.mstatus_ |= mstatus::kMPP | mstatus::kMPRV;  // MPP = M keeps MPRV
  hart.mstatus_ &= ~mstatus::kMPIE;
  EXPECT_TRUE(hart.mret());
  EXPECT_EQ(hart.priv, kPrivM);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kMPRV);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kMIE);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kMPIE);
}

TEST_F(TrapTest, Sret) {
  hart.priv = kPrivU;
  EXPECT_FALSE(hart.sret());
  hart.priv = kPrivS;
  hart.sepc = 0x1000;
  hart.mstatus_ |= mstatus::kTSR;
  EXPECT_FALSE(hart.sret());
  hart.mstatus_ &= ~mstatus::kTSR;
  hart.mstatus_ |= mstatus::kSPP | mstatus::kSPIE | mstatus::kMPRV;
  EXPECT_TRUE(hart.sret());
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.next_pc, 0x1000u);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSIE);
  EXPECT_TRUE(hart.mstatus_ & mstatus::kSPIE);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSPP);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kMPRV);
  hart.mstatus_ &= ~mstatus::kSPIE;
  EXPECT_TRUE(hart.sret());
  EXPECT_EQ(hart.priv, kPrivU);
  EXPECT_FALSE(hart.mstatus_ & mstatus::kSIE);
  // From M, TSR does not apply.
  hart.priv = kPrivM;
  hart.mstatus_ |= mstatus::kTSR | mstatus::kSPP;
  EXPECT_TRUE(hart.sret());
  EXPECT_EQ(hart.priv, kPrivS);
}

TEST_F(TrapTest, WfiAndSfenceLegality) {
  EXPECT_TRUE(hart.wfi_allowed());
  EXPECT_TRUE(hart.sfence_allowed());
  hart.mstatus_ |= mstatus::kTW | mstatus::kTVM;
  EXPECT_TRUE(hart.wfi_allowed());  // M-mode ignores TW/TVM
  EXPECT_TRUE(hart.sfence_allowed());
  hart.priv = kPrivS;
  EXPECT_FALSE(hart.wfi_allowed());
  EXPECT_FALSE(hart.sfence_allowed());
  hart.mstatus_ &= ~(mstatus::kTW | mstatus::kTVM);
  EXPECT_TRUE(hart.wfi_allowed());
  EXPECT_TRUE(hart.sfence_allowed());
  hart.priv = kPrivU;
  EXPECT_FALSE(hart.wfi_allowed());
  EXPECT_FALSE(hart.sfence_allowed());
}

}  // namespace
}  // namespace nimbus::cpu
