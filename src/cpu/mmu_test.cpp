#include <gtest/gtest.h>

#include <cstdint>

#include "cpu/hart.h"
#include "cpu/mmu_test_fixture.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

using mmu_testing::A;
using mmu_testing::D;
using mmu_testing::G;
using mmu_testing::kRam;
using mmu_testing::MmuTest;
using mmu_testing::R;
using mmu_testing::RomWord;
using mmu_testing::U;
using mmu_testing::V;
using mmu_testing::W;
using mmu_testing::X;

TEST_F(MmuTest, BareAndMachineModeAreIdentity) {
  Translation t{};
  ASSERT_TRUE(tr(0x80000010, Access::kLoad, t));
  EXPECT_EQ(t.paddr, 0x80000010u);
  EXPECT_TRUE(t.page_uniform);
  set_root(8);
  hart.priv = kPrivM;
  ASSERT_TRUE(tr(0x80000020, Access::kFetch, t, 4));
  EXPECT_EQ(t.paddr, 0x80000020u);
  // Bare: no canonical check.
  hart.satp = 0;
  hart.priv = kPrivS;
  ASSERT_TRUE(tr(0x0000100000000000ULL, Access::kLoad, t));
  EXPECT_EQ(t.paddr, 0x0000100000000000ULL);
}

TEST_F(MmuTest, Sv39FourKilobytePage) {
  set_root(8);
  uint64_t va = 0x40201000;
  uint64_t leaf = map(va, kRam + 0x400000, V | R | W | X, 0);
  Translation t{};
  ASSERT_TRUE(tr(va + 0x123, Access::kLoad, t, 1));
  EXPECT_EQ(t.paddr, kRam + 0x400123);
  EXPECT_TRUE(t.page_uniform);
  EXPECT_TRUE(rd64(leaf) & A);
  EXPECT_FALSE(rd64(leaf) & D);  // loads set A only
  ASSERT_TRUE(tr(va + 0x8, Access::kStore, t));
  EXPECT_TRUE(rd64(leaf) & D);
  EXPECT_EQ(t.paddr, kRam + 0x400008);
  // Unmapped neighbour page faults.
  expect_fault(va + 0x1000, Access::kLoad, kLoadPageFault);
  expect_fault(va + 0x1000, Access::kStore, kStorePageFault);
  expect_fault(va + 0x1000, Access::kFetch, kInsnPageFault);
}

TEST_F(MmuTest, Sv39HighHalfAndCanonicalCheck) {
  set_root(8);
  uint64_t va = 0xFFFFFFC000001000ULL;  // vpn2 = 0x100
  map(va, kRam + 0x5000, V | R | A, 0);
  Translation t{};
  ASSERT_TRUE(tr(va + 4, Access::kLoad, t, 4));
  EXPECT_EQ(t.paddr, kRam + 0x5004);
  // Bits 63:39 must all equal bit 38.
  expect_fault(0x0000004000001000ULL, Access::kLoad, kLoadPageFault);
  expect_fault(0xFFFFFF8000001000ULL, Access::kStore, kStorePageFault);
  expect_fault(0x8000000000001000ULL, Access::kFetch, kInsnPageFault);
}

TEST_F(MmuTest, Sv39Superpages) {
  set_root(8);
  map(0x40000000, kRam, V | R | W | X | A | D, 2);         // 1 GiB
  map(0x00200000, kRam + 0x600000, V | R | W | A | D, 1);  // 2 MiB
  Translation t{};
  ASSERT_TRUE(tr(0x40000000 + 0xABCDE8, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0xABCDE8);
  ASSERT_TRUE(tr(0x00200000 + 0x1FFFF8, Access::kStore, t));
  EXPECT_EQ(t.paddr, kRam + 0x7FFFF8);
}

TEST_F(MmuTest, MisalignedSuperpageFaults) {
  set_root(8);
  map(0x00200000, kRam + 0x601000, V | R | W | A | D, 1);  // 2 MiB leaf, PPN not aligned
  map(0x40000000, kRam + 0x200000, V | R | A, 2);          // 1 GiB leaf, PPN not aligned
  expect_fault(0x00200000, Access::kLoad, kLoadPageFault);
  expect_fault(0x40000000, Access::kLoad, kLoadPageFault);
}

TEST_F(MmuTest, Sv48WalkAndSuperpages) {
  set_root(9);
  uint64_t va = 0x0000123456789000ULL;
  map(va, kRam + 0x9000, V | R | A, 0);
  Translation t{};
  ASSERT_TRUE(tr(va + 0x10, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0x9010);
  // 512 GiB superpage at vpn3 = 1 mapping physical 0.
  map(0x0000008000000000ULL, 0, V | R | W | A | D, 3);
  ASSERT_TRUE(tr(0x0000008000000000ULL + kRam + 0x40, Access::kStore, t));
  EXPECT_EQ(t.paddr, kRam + 0x40);
  // 1 GiB superpage under Sv48.
  map(0x0000010040000000ULL, kRam, V | R | A, 2);
  ASSERT_TRUE(tr(0x0000010040000000ULL + 0x100, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0x100);
  // Sv48: bit 47 sign extension; an Sv39-canonical address is not automatically fine.
  expect_fault(0x0001000000000000ULL, Access::kLoad, kLoadPageFault);
  expect_fault(0xFFFF000000000000ULL, Access::kLoad, kLoadPageFault);  // canonical, unmapped
  expect_fault(0xFFF0800000000000ULL, Access::kLoad, kLoadPageFault);
  // Misaligned 512 GiB superpage.
  map(0x0000010000000000ULL, kRam, V | R | A, 3);
  expect_fault(0x0000010000000000ULL, Access::kLoad, kLoadPageFault);
}

TEST_F(MmuTest, InvalidPteEncodings) {
  set_root(8);
  uint64_t leaf = map(0x1000, kRam + 0x1000, V | R | W | A | D, 0);
  Translation t{};
  ASSERT_TRUE(tr(0x1000, Access::kStore, t));
  wr64(leaf, pte(kRam + 0x1000, V | W | A | D));  // W without R
  expect_fault(0x1000, Access::kStore, kStorePageFault);
  wr64(leaf, pte(kRam + 0x1000, R | W | A | D));  // V = 0
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
  wr64(leaf, pte(kRam + 0x1000, V | R | A) | (1ULL << 61));  // PBMT bits: not implemented
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
  wr64(leaf, pte(kRam + 0x1000, V | R | A) | (1ULL << 63));  // N bit
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
  wr64(leaf, pte(kRam + 0x1000, V | R | A) | (1ULL << 54));
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
  // A non-leaf at level 0 is a page fault.
  wr64(leaf, pte(kRam + 0x1000, V));
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
}

TEST_F(MmuTest, PermissionBits) {
  set_root(8);
  map(0x1000, kRam + 0x1000, V | R | A | D, 0);
  map(0x2000, kRam + 0x2000, V | X | A, 0);
  map(0x3000, kRam + 0x3000, V | R | W | A | D, 0);
  Translation t{};
  expect_fault(0x1000, Access::kStore, kStorePageFault);
  expect_fault(0x1000, Access::kFetch, kInsnPageFault);
  ASSERT_TRUE(tr(0x2000, Access::kFetch, t, 4));
  expect_fault(0x2000, Access::kLoad, kLoadPageFault);  // execute-only without MXR
  hart.mstatus_ |= mstatus::kMXR;
  ASSERT_TRUE(tr(0x2000, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0x2000);
  expect_fault(0x3000, Access::kFetch, kInsnPageFault);
}

TEST_F(MmuTest, UserBitAndSum) {
  set_root(8);
  map(0x1000, kRam + 0x1000, V | R | W | X | U | A | D, 0);
  map(0x2000, kRam + 0x2000, V | R | W | X | A | D, 0);
  Translation t{};
  hart.priv = kPrivU;
  ASSERT_TRUE(tr(0x1000, Access::kStore, t));
  ASSERT_TRUE(tr(0x1000, Access::kFetch, t, 4));
  expect_fault(0x2000, Access::kLoad, kLoadPageFault);
  expect_fault(0x2000, Access::kFetch, kInsnPageFault);
  hart.priv = kPrivS;
  ASSERT_TRUE(tr(0x2000, Access::kLoad, t));
  expect_fault(0x1000, Access::kLoad, kLoadPageFault);
  expect_fault(0x1000, Access::kStore, kStorePageFault);
  hart.mstatus_ |= mstatus::kSUM;
  ASSERT_TRUE(tr(0x1000, Access::kLoad, t));
  ASSERT_TRUE(tr(0x1000, Access::kStore, t));
  expect_fault(0x1000, Access::kFetch, kInsnPageFault);  // never, even with SUM
}

TEST_F(MmuTest, MprvTranslatesLoadsAndStoresOnly) {
  set_root(8);
  map(0x1000, kRam + 0x7000, V | R | W | U | A | D, 0);
  hart.priv = kPrivM;
  hart.mstatus_ |= mstatus::kMPRV;  // MPP = U (0)
  Translation t{};
  ASSERT_TRUE(tr(0x1000, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0x7000);
  ASSERT_TRUE(tr(0x1000, Access::kFetch, t, 4));  // fetch stays at M: identity
  EXPECT_EQ(t.paddr, 0x1000u);
  // MPP = S: a U page needs SUM.
  hart.mstatus_ |= 1ULL << mstatus::kMPPShift;
  expect_fault(0x1000, Access::kStore, kStorePageFault);
  EXPECT_EQ(hart.priv, kPrivM);
  // MPP = M: identity.
  hart.mstatus_ |= mstatus::kMPP;
  ASSERT_TRUE(tr(0x1000, Access::kStore, t));
  EXPECT_EQ(t.paddr, 0x1000u);
}

TEST_F(MmuTest, AccessedDirtyWriteBack) {
  set_root(8);
  uint64_t leaf = map(0x5000, kRam + 0x5000, V | R | W, 0);
  Translation t{};
  ASSERT_TRUE(tr(0x5000, Access::kStore, t));  // sets A and D at once
  EXPECT_EQ(rd64(leaf) & (A | D), A | D);
  wr64(leaf, pte(kRam + 0x5000, V | R | W));
  expect_fault(0x5000, Access::kFetch, kInsnPageFault);  // no X: fault, no A update
  EXPECT_EQ(rd64(leaf) & (A | D), 0u);
  ASSERT_TRUE(tr(0x5000, Access::kLoad, t));
  EXPECT_EQ(rd64(leaf), pte(kRam + 0x5000, V | R | W | A));
  // Non-leaf PTEs are not touched.
  uint64_t root = (hart.satp & ((1ULL << 44) - 1)) << 12;
  EXPECT_EQ(rd64(root) & (A | D), 0u);
  // Global bit preserved.
  wr64(leaf, pte(kRam + 0x5000, V | R | W | G));
  ASSERT_TRUE(tr(0x5000, Access::kStore, t));
  EXPECT_EQ(rd64(leaf), pte(kRam + 0x5000, V | R | W | G | A | D));
}

TEST_F(MmuTest, PteOutsideRamNeedingUpdateIsAccessFault) {
  RomWord rom;
  bus.map(0x10000000, 0x1000, &rom);
  hart.satp = (8ULL << 60) | (0x10000000 >> 12);
  rom.value = pte(kRam, V | R | W | X | A | D);  // 1 GiB leaf at vpn2 = 0
  Translation t{};
  ASSERT_TRUE(tr(0x123458, Access::kStore, t));  // A and D already set: fine
  EXPECT_EQ(t.paddr, kRam + 0x123458);
  rom.value = pte(kRam, V | R | W | X);
  expect_fault(0x123458, Access::kLoad, kLoadAccessFault);
  // A PTE in a hole: access fault of the original access type.
  hart.satp = (8ULL << 60) | (0x20000000 >> 12);
  expect_fault(0x1000, Access::kFetch, kInsnAccessFault);
  expect_fault(0x1000, Access::kStore, kStoreAccessFault);
}

TEST_F(MmuTest, PmpChecksPageTableAndFinalAddress) {
  uint64_t root = set_root(8);
  map(0x1000, kRam + 0x800000, V | R | W | A | D, 0);
  (void)root;
  // Entry 0: data page only (NAPOT 4 KiB). Page tables (kRam+0x100000..) no longer covered.
  hart.pmpcfg[15] = 0;
  hart.pmpaddr[0] = ((kRam + 0x800000) >> 2) | 0x1FF;
  hart.pmpcfg[0] = (3 << 3) | 3;
  expect_fault(0x1000, Access::kLoad, kLoadAccessFault);
  // Tables readable, data page read-only: a store is an access fault after translation.
  hart.pmpaddr[1] = ((kRam + 0x100000) >> 2) | 0x3FFF;  // 64 KiB of tables
  hart.pmpcfg[1] = (3 << 3) | 3;
  hart.pmpcfg[0] = (3 << 3) | 1;
  Translation t{};
  ASSERT_TRUE(tr(0x1008, Access::kLoad, t));
  EXPECT_EQ(t.paddr, kRam + 0x800008);
  expect_fault(0x1008, Access::kStore, kStoreAccessFault);
  // Page tables readable but not writable: an A/D update is an access fault.
  hart.pmpcfg[1] = (3 << 3) | 1;
  hart.pmpcfg[0] = (3 << 3) | 3;
  map(0x2000, kRam + 0x800000, V | R | W, 0);
  expect_fault(0x2000, Access::kLoad, kLoadAccessFault);
}

TEST_F(MmuTest, PmpOnFinalAddressUsesFullSizeAndPageUniformity) {
  hart.pmpcfg[15] = 0;
  hart.pmpaddr[0] = (kRam + 0x804) >> 2;  // TOR [0, kRam+0x804)
  hart.pmpcfg[0] = (1 << 3) | 3;
  hart.satp = 0;
  Translation t{};
  ASSERT_TRUE(tr(kRam + 0x800, Access::kLoad, t, 4));
  EXPECT_FALSE(t.page_uniform);
  expect_fault(kRam + 0x800, Access::kLoad, kLoadAccessFault);  // 8 bytes straddle
  ASSERT_TRUE(tr(kRam - 0x1000, Access::kLoad, t));
  EXPECT_TRUE(t.page_uniform);
}

TEST_F(MmuTest, FaultsAreDelegatedToS) {
  set_root(8);
  hart.medeleg = (1ULL << kLoadPageFault) | (1ULL << kStorePageFault);
  hart.stvec = 0x80001000;
  Translation t{};
  EXPECT_FALSE(tr(0x7000, Access::kLoad, t));
  EXPECT_EQ(hart.priv, kPrivS);
  EXPECT_EQ(hart.scause, uint64_t{kLoadPageFault});
  EXPECT_EQ(hart.stval, 0x7000u);
  EXPECT_EQ(hart.sepc, 0x1234u);
  EXPECT_EQ(hart.next_pc, 0x80001000u);
  EXPECT_EQ(hart.mcause, 0u);
}

}  // namespace
}  // namespace nimbus::cpu

namespace nimbus::cpu {
namespace {

// The software TLB in front of the walker: a remapped page is seen after SFENCE.VMA and
// after a satp write, and (as the spec allows) not before.
TEST_F(MmuTest, TlbFollowsSfenceAndSatp) {
  set_root(8);  // Sv39
  const uint64_t code_pa = kRam + 0x2000, old_pa = kRam + 0x3000, new_pa = kRam + 0x4000;
  map(0x1000, code_pa, V | R | X | A, 0);
  const uint64_t leaf = map(0x40000000, old_pa, V | R | W | A | D, 0);
  const uint32_t code[] = {0x0005b503,   // ld a0, 0(a1)
                           0x12000073,   // sfence.vma
                           0x0005b603};  // ld a2, 0(a1)
  for (unsigned i = 0; i < 3; i++) bus.write(code_pa + 4 * i, 4, code[i]);
  wr64(old_pa, 111);
  wr64(new_pa, 222);
  hart.x[11] = 0x40000000;

  hart.pc = 0x1000;
  ASSERT_EQ(hart.run(1), 1u);
  EXPECT_EQ(hart.x[10], 111u);

  wr64(leaf, pte(new_pa, V | R | W | A | D));
  hart.pc = 0x1000;
  hart.run(1);
  EXPECT_EQ(hart.x[10], 111u) << "the cached translation was used";

  hart.run(2);  // sfence.vma, then the load again
  EXPECT_EQ(hart.x[12], 222u);

  // A satp write flushes nothing (entries are tagged by address space): rewriting the same
  // value keeps the cached translation; a fence of its ASID drops it.
  wr64(leaf, pte(old_pa, V | R | W | A | D));
  ASSERT_TRUE(hart.csr_write(0x180, hart.satp));
  hart.pc = 0x1008;
  hart.run(1);
  EXPECT_EQ(hart.x[12], 222u);
  hart.sfence_vma(false, 0, true, 0);
  hart.pc = 0x1008;
  hart.run(1);
  EXPECT_EQ(hart.x[12], 111u);
  EXPECT_EQ(hart.trap_count, 0u);
}

}  // namespace
}  // namespace nimbus::cpu
