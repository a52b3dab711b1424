// The software TLB's address-space tags and flushes (tlb.cpp), driven through real page
// tables, satp writes and SFENCE.VMA instructions.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "cpu/hart.h"
#include "cpu/mmu_test_fixture.h"

namespace nimbus::cpu {
namespace {

using mmu_testing::A;
using mmu_testing::D;
using mmu_testing::kRam;
using mmu_testing::R;
using mmu_testing::V;
using mmu_testing::W;
using mmu_testing::X;

constexpr uint64_t kCodeVa = 0x1000;
constexpr uint64_t kCodePa = kRam + 0x2000;
constexpr uint64_t kData = 0x40000000;  // the data address every test reads

class TlbTest : public mmu_testing::MmuTest {
 protected:
  void SetUp() override {
    MmuTest::SetUp();
    const uint32_t code[] = {0x0005b503,   // ld a0, 0(a1)
                             0x12d60073,   // sfence.vma a2, a3
                             0x12d00073,   // sfence.vma zero, a3
                             0x12060073};  // sfence.vma a2, zero
    for (unsigned i = 0; i < 4; i++) bus.write(kCodePa + 4 * i, 4, code[i]);
  }

  // A new Sv39 address space with this ASID whose code page is mapped; returns its satp
  // (hart.satp is left pointing at it, as map() needs).
  uint64_t space(uint64_t asid) {
    set_root(8);
    hart.satp |= asid << 44;
    map(kCodeVa, kCodePa, V | R | X | A, 0);
    return hart.satp;
  }
  // A data page holding `value`.
  uint64_t page_with(uint64_t value) {
    const uint64_t pa = alloc_table();
    wr64(pa, value);
    return pa;
  }
  void switch_to(uint64_t satp) { ASSERT_TRUE(hart.csr_write(0x180, satp)); }
  uint64_t load(uint64_t va) {
    hart.x[11] = va;
    hart.pc = kCodeVa;
    EXPECT_EQ(hart.run(1), 1u);
    EXPECT_EQ(hart.trap_count, 0u);
    return hart.x[10];
  }
  // Runs the SFENCE.VMA at kCodeVa + 4 * which (1: va and ASID, 2: ASID, 3: va).
  void fence(unsigned which, uint64_t va, uint64_t asid) {
    hart.x[12] = va;
    hart.x[13] = asid;
    hart.pc = kCodeVa + 4 * which;
    ASSERT_EQ(hart.run(1), 1u);
    ASSERT_EQ(hart.trap_count, 0u);
  }
};

// A context switch keeps the entries of the address space it leaves (the stale value read
// after switching back proves the entry was kept), and never lets one space hit another's.
TEST_F(TlbTest, SatpSwitchKeepsEachSpacesEntries) {
  const uint64_t s1 = space(1);
  const uint64_t leaf1 = map(kData, page_with(111), V | R | W | A | D, 0);
  const uint64_t s2 = space(2);
  const uint64_t leaf2 = map(kData, page_with(222), V | R | W | A | D, 0);

  switch_to(s1);
  EXPECT_EQ(load(kData), 111u);
  switch_to(s2);
  EXPECT_EQ(load(kData), 222u) << "space 2 hit space 1's entry";

  wr64(leaf1, pte(page_with(333), V | R | W | A | D));
  wr64(leaf2, pte(page_with(444), V | R | W | A | D));
  switch_to(s1);
  EXPECT_EQ(load(kData), 111u) << "space 1's entry was flushed by the satp writes";
  switch_to(s2);
  EXPECT_EQ(load(kData), 222u);

  fence(2, 0, 1);  // sfence.vma zero, ASID 1: space 2 (current) keeps its entry
  EXPECT_EQ(load(kData), 222u);
  switch_to(s1);
  EXPECT_EQ(load(kData), 333u);

  wr64(leaf1, pte(page_with(555), V | R | W | A | D));
  EXPECT_EQ(load(kData), 333u);
  fence(2, 0, 1);  // the current space's own ASID: seen at once
  EXPECT_EQ(load(kData), 555u);
}

// SFENCE.VMA with an address drops that page in every address space and keeps the others.
TEST_F(TlbTest, AddressFenceDropsThatPageOnly) {
  const uint64_t s1 = space(1);
  const uint64_t leaf_a = map(kData, page_with(1), V | R | W | A | D, 0);
  const uint64_t leaf_b = map(kData + 0x1000, page_with(2), V | R | W | A | D, 0);
  const uint64_t s2 = space(2);
  const uint64_t leaf2 = map(kData, page_with(3), V | R | W | A | D, 0);
  switch_to(s2);
  EXPECT_EQ(load(kData), 3u);
  switch_to(s1);
  EXPECT_EQ(load(kData), 1u);
  EXPECT_EQ(load(kData + 0x1000), 2u);

  wr64(leaf_a, pte(page_with(10), V | R | W | A | D));
  wr64(leaf_b, pte(page_with(20), V | R | W | A | D));
  wr64(leaf2, pte(page_with(30), V | R | W | A | D));
  fence(3, kData + 0x123, 0);  // sfence.vma va, zero
  EXPECT_EQ(load(kData), 10u);
  EXPECT_EQ(load(kData + 0x1000), 2u) << "a fence of one page dropped another";
  switch_to(s2);
  EXPECT_EQ(load(kData), 30u) << "the page was kept in the other address space";

  fence(1, kData + 0x1000, 1);  // sfence.vma va, ASID
  switch_to(s1);
  EXPECT_EQ(load(kData + 0x1000), 20u);
}

// A superpage is cached as 4 KiB slices: a fence of any address in it drops them all.
TEST_F(TlbTest, FenceInsideASuperpageDropsAllItsSlices) {
  space(1);
  const uint64_t old_pa = kRam + 0x400000, new_pa = kRam + 0x600000;  // 2 MiB aligned
  const uint64_t leaf = map(kData, old_pa, V | R | W | A | D, 1);
  const uint64_t other_leaf = map(0x7000, page_with(7), V | R | W | A | D, 0);
  wr64(old_pa + 0x1000, 1);
  wr64(old_pa + 0x5000, 5);
  wr64(new_pa + 0x1000, 11);
  wr64(new_pa + 0x5000, 55);
  EXPECT_EQ(load(kData + 0x1000), 1u);
  EXPECT_EQ(load(kData + 0x5000), 5u);
  EXPECT_EQ(load(0x7000), 7u);

  wr64(leaf, pte(new_pa, V | R | W | A | D));
  wr64(other_leaf, pte(page_with(70), V | R | W | A | D));
  fence(3, 0x9000, 0);  // outside the superpage: its slices stay
  EXPECT_EQ(load(kData + 0x1000), 1u);
  EXPECT_EQ(load(0x7000), 7u);
  fence(3, kData + 0x1F0000, 0);  // a slice never loaded, in the same megapage
  EXPECT_EQ(load(kData + 0x1000), 11u);
  EXPECT_EQ(load(kData + 0x5000), 55u);
  EXPECT_EQ(load(0x7000), 70u);
}

// The SBI's remote fence: a range drops just its pages; a huge range, all of the ASID.
TEST_F(TlbTest, RangeFence) {
  space(1);
  std::vector<uint64_t> leaves;
  for (uint64_t i = 0; i < 4; i++) {
    leaves.push_back(map(kData + i * 0x1000, page_with(i), V | R | W | A | D, 0));
    EXPECT_EQ(load(kData + i * 0x1000), i);
  }
  for (uint64_t i = 0; i < 4; i++) wr64(leaves[i], pte(page_with(100 + i), V | R | W | A | D));
  hart.sfence_vma_range(kData + 0x1800, 0x1000, true, 1);  // touches pages 1 and 2
  EXPECT_EQ(load(kData), 0u);
  EXPECT_EQ(load(kData + 0x1000), 101u);
  EXPECT_EQ(load(kData + 0x2000), 102u);
  EXPECT_EQ(load(kData + 0x3000), 3u);
  hart.sfence_vma_range(0, ~0ULL, true, 1);
  EXPECT_EQ(load(kData), 100u);
  EXPECT_EQ(load(kData + 0x3000), 103u);
}

// Many more address spaces than tags: every switch still reads its own space's data.
TEST_F(TlbTest, ManySpacesStayApartWhenTagsRunOut) {
  std::vector<uint64_t> satps;
  for (uint64_t i = 0; i < 300; i++) {
    satps.push_back(space(i % 7));  // ASIDs shared, as after ASID rollover
    map(kData, page_with(1000 + i), V | R | W | A | D, 0);
  }
  for (int round = 0; round < 2; round++) {
    for (uint64_t i = 0; i < satps.size(); i++) {
      switch_to(satps[i]);
      ASSERT_EQ(load(kData), 1000 + i) << "space " << i << " round " << round;
    }
  }
}

}  // namespace
}  // namespace nimbus::cpu
