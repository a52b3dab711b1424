#include <gtest/gtest.h>

#include <cstdint>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

class CsrTest : public ::testing::Test {
 protected:
  mem::Bus bus{0x80000000, 16 << 20};
  Hart hart{bus, 3};

  uint64_t rd(unsigned csr) {
    uint64_t v = 0xDEADBEEF;
    EXPECT_TRUE(hart.csr_read(csr, v)) << std::hex << csr;
    return v;
  }
  bool can_read(unsigned csr) {
    uint64_t v;
    return hart.csr_read(csr, v);
  }
};

TEST_F(CsrTest, PrivilegeLevelsGateAccess) {
  hart.priv = kPrivU;
  EXPECT_FALSE(can_read(0x300));  // mstatus
  EXPECT_FALSE(can_read(0x100));  // sstatus
  EXPECT_FALSE(hart.csr_write(0x140, 1));
  hart.priv = kPrivS;
  EXPECT_FALSE(can_read(0x300));
  EXPECT_FALSE(hart.csr_write(0x340, 1));  // mscratch
  EXPECT_TRUE(can_read(0x100));
  EXPECT_TRUE(hart.csr_write(0x140, 7));
  hart.priv = kPrivM;
  EXPECT_EQ(rd(0x140), 7u);
  EXPECT_TRUE(hart.csr_write(0x340, 9));
  EXPECT_EQ(rd(0x340), 9u);
}

TEST_F(CsrTest, ReadOnlyAndNonexistent) {
  EXPECT_EQ(rd(0xF14), 3u);  // mhartid
  EXPECT_EQ(rd(0xF11), 0u);
  EXPECT_EQ(rd(0xF15), 0u);
  EXPECT_FALSE(hart.csr_write(0xF14, 0));
  EXPECT_FALSE(hart.csr_write(0xF11, 0));
  EXPECT_FALSE(hart.csr_write(0xC00, 0));  // cycle is read-only even in M-mode
  EXPECT_FALSE(can_read(0x310));           // mstatush does not exist on RV64
  EXPECT_FALSE(can_read(0x3A1));           // odd pmpcfg
  EXPECT_FALSE(can_read(0x3A3));
  EXPECT_FALSE(hart.csr_write(0x3A1, 0));
  EXPECT_FALSE(can_read(0xB01));
  EXPECT_FALSE(can_read(0x7B0));  // dcsr: debug mode only
  EXPECT_FALSE(can_read(0x5C0));
}

TEST_F(CsrTest, BreakBlockOnSuccessfulWriteOnly) {
  hart.break_block = false;
  EXPECT_FALSE(hart.csr_write(0xF14, 0));
  EXPECT_FALSE(hart.break_block);
  EXPECT_TRUE(hart.csr_write(0x340, 1));
  EXPECT_TRUE(hart.break_block);
}

TEST_F(CsrTest, SatpWarl) {
  uint64_t sv39 = (8ULL << 60) | (0xABCDULL << 44) | 0x80123;
  EXPECT_TRUE(hart.csr_write(0x180, sv39));
  EXPECT_EQ(rd(0x180), sv39);                                 // 16 ASID bits kept
  EXPECT_TRUE(hart.csr_write(0x180, (5ULL << 60) | 0x1234));  // unsupported: ignored
  EXPECT_EQ(rd(0x180), sv39);
  EXPECT_TRUE(hart.csr_write(0x180, (10ULL << 60) | 0x1234));  // Sv57 unsupported
  EXPECT_EQ(rd(0x180), sv39);
  uint64_t sv48 = (9ULL << 60) | 0xFFFFFFFFFFFULL;
  EXPECT_TRUE(hart.csr_write(0x180, sv48));
  EXPECT_EQ(rd(0x180), sv48);
  EXPECT_TRUE(hart.csr_write(0x180, 0));
  EXPECT_EQ(rd(0x180), 0u);
}

// A satp write flushes nothing: it selects the address space whose tag TLB lookups use.
TEST_F(CsrTest, SatpWriteSelectsAddressSpaceWithoutFlush) {
  hart.tlb_load[5].tag = 42;
  hart.tlb_fetch[7].tag = 43;
  hart.priv = kPrivS;
  hart.update_tlb_context();
  const uint64_t bare_data = hart.data_ctx, bare_fetch = hart.fetch_ctx;
  EXPECT_TRUE(hart.csr_write(0x180, (8ULL << 60) | (3ULL << 44) | 0x1234));
  EXPECT_EQ(hart.tlb_load[5].tag, 42u);
  EXPECT_EQ(hart.tlb_fetch[7].tag, 43u);
  const uint64_t sv39_data = hart.data_ctx;
  EXPECT_NE(sv39_data, bare_data);
  EXPECT_NE(hart.fetch_ctx, bare_fetch);
  EXPECT_TRUE(hart.csr_write(0x180, 0));
  EXPECT_EQ(hart.data_ctx, bare_data);
  EXPECT_EQ(hart.fetch_ctx, bare_fetch);
  EXPECT_TRUE(hart.csr_write(0x180, (8ULL << 60) | (3ULL << 44) | 0x1234));
  EXPECT_EQ(hart.data_ctx, sv39_data);
}

TEST_F(CsrTest, SatpTrappedByTvmInSMode) {
  hart.priv = kPrivS;
  EXPECT_TRUE(can_read(0x180));
  hart.mstatus_ |= mstatus::kTVM;
  EXPECT_FALSE(can_read(0x180));
  EXPECT_FALSE(hart.csr_write(0x180, 0));
  hart.priv = kPrivM;
  EXPECT_TRUE(can_read(0x180));
  EXPECT_TRUE(hart.csr_write(0x180, 8ULL << 60));
}

TEST_F(CsrTest, MstatusFieldsAndMppWarl) {
  uint64_t v = rd(0x300);
  EXPECT_EQ((v >> 32) & 3, 2u);                                    // UXL
  EXPECT_EQ((v >> 34) & 3, 2u);                                    // SXL
  EXPECT_TRUE(hart.csr_write(0x300, 1ULL << mstatus::kMPPShift));  // MPP = S
  EXPECT_EQ((rd(0x300) & mstatus::kMPP) >> mstatus::kMPPShift, 1u);
  EXPECT_TRUE(hart.csr_write(0x300, 2ULL << mstatus::kMPPShift));  // reserved: keep S
  EXPECT_EQ((rd(0x300) & mstatus::kMPP) >> mstatus::kMPPShift, 1u);
  EXPECT_TRUE(hart.csr_write(0x300, 3ULL << mstatus::kMPPShift));
  EXPECT_EQ((rd(0x300) & mstatus::kMPP) >> mstatus::kMPPShift, 3u);
  // Non-writable bits stay zero / fixed; SD follows FS == Dirty.
  EXPECT_TRUE(hart.csr_write(0x300, ~0ULL & ~mstatus::kMPP));
  v = rd(0x300);
  EXPECT_EQ(v & (mstatus::kUBE | mstatus::kSBE | mstatus::kMBE | mstatus::kVS | mstatus::kXS), 0u);
  EXPECT_EQ((v >> 32) & 0xF, 0xAu);
  EXPECT_TRUE(v & mstatus::kSD);
  EXPECT_TRUE(v & mstatus::kTSR);
  EXPECT_TRUE(v & mstatus::kMPRV);
  EXPECT_TRUE(hart.csr_write(0x300, 1ULL << mstatus::kFSShift));  // FS = Initial
  EXPECT_FALSE(rd(0x300) & mstatus::kSD);
}

TEST_F(CsrTest, MstatusWriteSwitchesTlbContext) {
  // SUM/MXR/MPRV changes select other TLB entries instead of flushing them.
  hart.tlb_store[1].tag = 1;
  hart.priv = kPrivS;
  hart.update_tlb_context();
  const uint64_t without_sum = hart.data_ctx;
  EXPECT_TRUE(hart.csr_write(0x100, mstatus::kSUM));
  EXPECT_NE(hart.data_ctx, without_sum);
  EXPECT_EQ(hart.tlb_store[1].tag, 1u);
  EXPECT_TRUE(hart.csr_write(0x100, 0));
  EXPECT_EQ(hart.data_ctx, without_sum);
  // MPRV in M-mode: loads and stores take MPP's context, fetches keep M's.
  hart.priv = kPrivM;
  EXPECT_TRUE(hart.csr_write(0x300, mstatus::kMPRV | (1ULL << mstatus::kMPPShift)));
  EXPECT_EQ(hart.data_ctx, without_sum);
  EXPECT_EQ(hart.fetch_ctx, (uint64_t{kPrivM} << kTlbCtxShift) | hart.tlb_space_ctx);
}

TEST_F(CsrTest, SstatusIsRestrictedView) {
  EXPECT_TRUE(hart.csr_write(0x300, mstatus::kMIE | mstatus::kMPP | mstatus::kTVM));
  uint64_t s = rd(0x100);
  EXPECT_EQ(s & (mstatus::kMIE | mstatus::kMPP | mstatus::kTVM), 0u);
  EXPECT_EQ((s >> 32) & 3, 2u);  // UXL visible
  EXPECT_EQ((s >> 34) & 3, 0u);  // SXL hidden
  // Writing sstatus cannot touch M-only bits.
  EXPECT_TRUE(hart.csr_write(0x100, ~0ULL));
  uint64_t m = rd(0x300);
  EXPECT_TRUE(m & mstatus::kMIE);
  EXPECT_TRUE(m & mstatus::kTVM);
  EXPECT_EQ(m & mstatus::kMPP, mstatus::kMPP);
  EXPECT_TRUE(m & mstatus::kSIE);
  EXPECT_TRUE(m & mstatus::kSUM);
  EXPECT_TRUE(m & mstatus::kMXR);
  EXPECT_EQ(m & mstatus::kFS, mstatus::kFS);
  EXPECT_FALSE(m & mstatus::kMPRV);
  EXPECT_TRUE(hart.csr_write(0x100, 0));
  m = rd(0x300);
  EXPECT_TRUE(m & mstatus::kMIE);
  EXPECT_FALSE(m & mstatus::kSIE);
  EXPECT_FALSE(m & mstatus::kSD);
}

TEST_F(CsrTest, TvecModes) {
  EXPECT_TRUE(hart.csr_write(0x305, 0x80001001));  // vectored
  EXPECT_EQ(rd(0x305), 0x80001001u);
  EXPECT_TRUE(hart.csr_write(0x305, 0x80002002));  // mode 2 reserved: keep vectored
  EXPECT_EQ(rd(0x305), 0x80002001u);
  EXPECT_TRUE(hart.csr_write(0x305, 0x80003000));
  EXPECT_EQ(rd(0x305), 0x80003000u);
  EXPECT_TRUE(hart.csr_write(0x305, 0x80004003));  // mode 3: keep direct
  EXPECT_EQ(rd(0x305), 0x80004000u);
  EXPECT_TRUE(hart.csr_write(0x105, 0x1003));
  EXPECT_EQ(rd(0x105), 0x1000u);
  EXPECT_TRUE(hart.csr_write(0x105, 0x2001));
  EXPECT_EQ(rd(0x105), 0x2001u);
}

TEST_F(CsrTest, EpcAlignment) {
  EXPECT_TRUE(hart.csr_write(0x341, 0x80000003));
  EXPECT_EQ(rd(0x341), 0x80000002u);
  EXPECT_TRUE(hart.csr_write(0x141, 0x1001));
  EXPECT_EQ(rd(0x141), 0x1000u);
}

TEST_F(CsrTest, DelegationRegisters) {
  EXPECT_TRUE(hart.csr_write(0x302, ~0ULL));
  EXPECT_EQ(rd(0x302), 0xFFFFu & ~(1u << 11));
  EXPECT_TRUE(hart.csr_write(0x303, ~0ULL));
  EXPECT_EQ(rd(0x303), 0x222u);
  EXPECT_TRUE(hart.csr_write(0x304, ~0ULL));
  EXPECT_EQ(rd(0x304), 0xAAAu);
}

TEST_F(CsrTest, SieSipAreViewsThroughMideleg) {
  EXPECT_TRUE(hart.csr_write(0x304, 0xAAA));
  EXPECT_TRUE(hart.csr_write(0x303, 1u << kIrqSTimer));
  EXPECT_EQ(rd(0x104), 1u << kIrqSTimer);
  EXPECT_TRUE(hart.csr_write(0x104, 0));  // clears only delegated bits
  EXPECT_EQ(rd(0x304), 0xAAAu & ~(1u << kIrqSTimer));
  EXPECT_TRUE(hart.csr_write(0x104, ~0ULL));
  EXPECT_EQ(rd(0x304), 0xAAAu);
  hart.set_interrupt_pending(kIrqSTimer, true);
  hart.set_interrupt_pending(kIrqMTimer, true);
  hart.set_interrupt_pending(kIrqSExt, true);
  EXPECT_EQ(rd(0x144), 1u << kIrqSTimer);
  // SSIP writable through sip only when delegated.
  EXPECT_TRUE(hart.csr_write(0x144, 1u << kIrqSSoft));
  EXPECT_EQ(hart.mip.load() & (1u << kIrqSSoft), 0u);
  EXPECT_TRUE(hart.csr_write(0x303, 0x222));
  EXPECT_TRUE(hart.csr_write(0x144, 1u << kIrqSSoft));
  EXPECT_NE(hart.mip.load() & (1u << kIrqSSoft), 0u);
  // STIP/SEIP are read-only in sip.
  EXPECT_TRUE(hart.csr_write(0x144, 0));
  EXPECT_EQ(hart.mip.load(), (1u << kIrqSTimer) | (1u << kIrqMTimer) | (1u << kIrqSExt));
}

TEST_F(CsrTest, MipWritableBitsPreserveDeviceBits) {
  hart.set_interrupt_pending(kIrqMTimer, true);
  hart.set_interrupt_pending(kIrqMExt, true);
  EXPECT_TRUE(hart.csr_write(0x344, 0x222));
  EXPECT_EQ(rd(0x344), 0x222u | (1u << kIrqMTimer) | (1u << kIrqMExt));
  EXPECT_TRUE(hart.csr_write(0x344, 0));  // cannot clear MTIP/MEIP
  EXPECT_EQ(rd(0x344), (1u << kIrqMTimer) | (1u << kIrqMExt));
  EXPECT_TRUE(hart.csr_write(0x344, 1u << kIrqMSoft));  // cannot set MSIP
  EXPECT_EQ(rd(0x344) & (1u << kIrqMSoft), 0u);
}

TEST_F(CsrTest, CounterEnables) {
  hart.cycle = 100;
  hart.instret = 50;
  hart.time_source = [] { return uint64_t{777}; };
  EXPECT_EQ(rd(0xC00), 100u);
  EXPECT_EQ(rd(0xC01), 777u);
  EXPECT_EQ(rd(0xC02), 50u);
  EXPECT_EQ(rd(0xB00), 100u);
  EXPECT_EQ(rd(0xB02), 50u);
  hart.priv = kPrivS;
  EXPECT_FALSE(can_read(0xC00));
  EXPECT_FALSE(can_read(0xC01));
  hart.mcounteren = 0x2;  // TM only
  EXPECT_FALSE(can_read(0xC00));
  EXPECT_EQ(rd(0xC01), 777u);
  hart.priv = kPrivU;
  EXPECT_FALSE(can_read(0xC01));  // scounteren.TM clear
  hart.scounteren = 0x7;
  EXPECT_EQ(rd(0xC01), 777u);
  EXPECT_FALSE(can_read(0xC00));  // mcounteren.CY clear
  hart.mcounteren = ~0ULL;
  hart.scounteren = ~0ULL;
  EXPECT_EQ(rd(0xC00), 100u);
  EXPECT_EQ(rd(0xC05), 0u);  // hpmcounter5
  EXPECT_EQ(rd(0xC1F), 0u);
  hart.priv = kPrivM;
  EXPECT_TRUE(hart.csr_write(0xB00, 5));
  EXPECT_TRUE(hart.csr_write(0xB02, 6));
  EXPECT_EQ(hart.cycle, 5u);
  EXPECT_EQ(hart.instret, 6u);
  EXPECT_TRUE(hart.csr_write(0xB03, 9));  // mhpmcounter3: ignored
  EXPECT_EQ(rd(0xB03), 0u);
  EXPECT_TRUE(hart.csr_write(0x323, 9));  // mhpmevent3
  EXPECT_EQ(rd(0x323), 0u);
  hart.time_source = nullptr;
  EXPECT_EQ(rd(0xC01), 0u);
}

TEST_F(CsrTest, MiscMasks) {
  EXPECT_TRUE(hart.csr_write(0x306, ~0ULL));
  EXPECT_EQ(rd(0x306), 0xFFFFFFFFu);
  EXPECT_TRUE(hart.csr_write(0x106, ~0ULL));
  EXPECT_EQ(rd(0x106), 0xFFFFFFFFu);
  EXPECT_TRUE(hart.csr_write(0x320, ~0ULL));
  EXPECT_EQ(rd(0x320), 5u);
  EXPECT_TRUE(hart.csr_write(0x30A, ~0ULL));
  EXPECT_EQ(rd(0x30A), 1u);
  EXPECT_TRUE(hart.csr_write(0x10A, ~0ULL));
  EXPECT_EQ(rd(0x10A), 1u);
  uint64_t misa = rd(0x301);
  EXPECT_TRUE(hart.csr_write(0x301, 0));
  EXPECT_EQ(rd(0x301), misa);
  EXPECT_EQ(misa >> 62, 2u);
  EXPECT_TRUE(hart.csr_write(0x7A0, 5));  // tselect: no triggers
  EXPECT_EQ(rd(0x7A0), 0u);
  EXPECT_EQ(rd(0x7A1), 0u);
  EXPECT_TRUE(hart.csr_write(0x343, 0x1234));
  EXPECT_EQ(rd(0x343), 0x1234u);
  EXPECT_TRUE(hart.csr_write(0x342, kInterruptBit | 7));
  EXPECT_EQ(rd(0x342), kInterruptBit | 7);
}

TEST_F(CsrTest, FloatingPointCsrs) {
  EXPECT_FALSE(can_read(0x001));  // FS = Off
  EXPECT_FALSE(hart.csr_write(0x003, 0));
  hart.mstatus_ |= 1ULL << mstatus::kFSShift;  // Initial
  EXPECT_TRUE(hart.csr_write(0x003, 0xFFF));
  EXPECT_EQ(rd(0x003), 0xFFu);
  EXPECT_EQ(hart.fflags, 0x1Fu);
  EXPECT_EQ(hart.frm, 7u);
  EXPECT_EQ(hart.mstatus_ & mstatus::kFS, mstatus::kFS);
  EXPECT_TRUE(rd(0x300) & mstatus::kSD);
  EXPECT_TRUE(hart.csr_write(0x002, 0x9));
  EXPECT_EQ(rd(0x002), 1u);
  EXPECT_EQ(rd(0x001), 0x1Fu);
  EXPECT_TRUE(hart.csr_write(0x001, 0x21));
  EXPECT_EQ(rd(0x003), (1u << 5) | 1u);
  hart.priv = kPrivU;  // FP CSRs are user-level
  EXPECT_EQ(rd(0x003), (1u << 5) | 1u);
}

TEST_F(CsrTest, PmpCsrs) {
  EXPECT_EQ(rd(0x3A4), 0u);  // pmpcfg4: exists, zero
  EXPECT_TRUE(hart.csr_write(0x3A4, ~0ULL));
  EXPECT_EQ(rd(0x3A4), 0u);
  EXPECT_TRUE(hart.csr_write(0x3C5, ~0ULL));  // pmpaddr21
  EXPECT_EQ(rd(0x3C5), 0u);
  EXPECT_FALSE(can_read(0x3F0));
  // pmpaddr is 54 bits.
  EXPECT_TRUE(hart.csr_write(0x3B0, ~0ULL));
  EXPECT_EQ(rd(0x3B0), (1ULL << 54) - 1);
  // cfg: reserved bits 6:5 read zero; W without R becomes no access.
  EXPECT_TRUE(hart.csr_write(0x3A0, 0x7F | (0x1EULL << 8) | (0x0FULL << 16)));
  EXPECT_EQ(rd(0x3A0), 0x1Fu | (0x1CULL << 8) | (0x0FULL << 16));
  // pmpcfg2 covers entries 8..15.
  EXPECT_TRUE(hart.csr_write(0x3A2, 0x0B));
  EXPECT_EQ(hart.pmpcfg[8], 0x0B);
  EXPECT_EQ(rd(0x3A2), 0x0Bu);
}

TEST_F(CsrTest, PmpLocking) {
  hart.tlb_load[0].tag = 1;
  // Entry 1: TOR, locked. Locks pmpcfg1, pmpaddr1 and (TOR) pmpaddr0.
  EXPECT_TRUE(hart.csr_write(0x3B0, 0x100));
  EXPECT_TRUE(hart.csr_write(0x3B1, 0x200));
  EXPECT_TRUE(hart.csr_write(0x3B2, 0x300));
  EXPECT_EQ(hart.tlb_load[0].tag, kTlbInvalid);
  EXPECT_TRUE(hart.csr_write(0x3A0, 0x8B00));
  EXPECT_EQ(hart.pmpcfg[1], 0x8B);
  EXPECT_TRUE(hart.csr_write(0x3B0, 0x111));
  EXPECT_TRUE(hart.csr_write(0x3B1, 0x222));
  EXPECT_TRUE(hart.csr_write(0x3B2, 0x333));
  EXPECT_EQ(rd(0x3B0), 0x100u);
  EXPECT_EQ(rd(0x3B1), 0x200u);
  EXPECT_EQ(rd(0x3B2), 0x333u);
  EXPECT_TRUE(hart.csr_write(0x3A0, 0x1F1F1F));
  EXPECT_EQ(hart.pmpcfg[0], 0x1F);
  EXPECT_EQ(hart.pmpcfg[1], 0x8B);  // locked: unchanged
  EXPECT_EQ(hart.pmpcfg[2], 0x1F);
  // A locked NAPOT entry does not lock the previous pmpaddr.
  hart.reset(0);
  EXPECT_TRUE(hart.csr_write(0x3A0, 0x9B00));
  EXPECT_TRUE(hart.csr_write(0x3B0, 0x55));
  EXPECT_EQ(rd(0x3B0), 0x55u);
}

}  // namespace
}  // namespace nimbus::cpu
