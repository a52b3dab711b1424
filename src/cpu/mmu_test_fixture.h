// The fixture of the MMU and TLB tests: a hart in S-mode over 16 MiB of RAM, PMP open,
// and helpers that build Sv39/Sv48 page tables in that RAM.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu::mmu_testing {

constexpr uint64_t V = 1, R = 2, W = 4, X = 8, U = 16, G = 32, A = 64, D = 128;
constexpr uint64_t kRam = 0x80000000;

// A device that holds one PTE-sized word (reads only; writes are refused).
class RomWord : public mem::MmioDevice {
 public:
  uint64_t value = 0;
  bool read(uint64_t offset, unsigned size, uint64_t& v) override {
    v = value;
    return offset == 0 && size == 8;
  }
  bool write(uint64_t, unsigned, uint64_t) override { return false; }
};

class MmuTest : public ::testing::Test {
 protected:
  mem::Bus bus{kRam, 16 << 20};
  Hart hart{bus, 0};
  uint64_t next_table = kRam + 0x100000;

  void SetUp() override {
    // One PMP entry granting everything (what firmware does).
    hart.pmpaddr[15] = (1ULL << 54) - 1;
    hart.pmpcfg[15] = (3 << 3) | 7;
    hart.mtvec = 0x80000000;
    hart.priv = kPrivS;
    hart.pc = 0x1234;
  }

  uint64_t alloc_table() {
    uint64_t t = next_table;
    next_table += 0x1000;
    return t;
  }
  uint64_t rd64(uint64_t pa) {
    uint64_t v = 0;
    EXPECT_TRUE(bus.read(pa, 8, v));
    return v;
  }
  void wr64(uint64_t pa, uint64_t v) { ASSERT_TRUE(bus.write(pa, 8, v)); }
  static uint64_t pte(uint64_t pa, uint64_t flags) { return ((pa >> 12) << 10) | flags; }
  static uint64_t vpn(uint64_t va, int level) { return (va >> (12 + 9 * level)) & 0x1FF; }

  // Sets satp for `mode` with a fresh root; returns the root table's address.
  uint64_t set_root(uint64_t mode) {
    uint64_t root = alloc_table();
    hart.satp = (mode << 60) | (root >> 12);
    return root;
  }
  // Maps va -> pa with a leaf at `leaf_level`, creating tables; returns the leaf PTE address.
  uint64_t map(uint64_t va, uint64_t pa, uint64_t flags, int leaf_level) {
    int levels = (hart.satp >> 60) == 9 ? 4 : 3;
    uint64_t table = (hart.satp & ((1ULL << 44) - 1)) << 12;
    for (int level = levels - 1; level > leaf_level; level--) {
      uint64_t addr = table + vpn(va, level) * 8;
      uint64_t e = rd64(addr);
      if (!(e & V)) {
        e = pte(alloc_table(), V);
        wr64(addr, e);
      }
      table = ((e >> 10) & ((1ULL << 44) - 1)) << 12;
    }
    uint64_t addr = table + vpn(va, leaf_level) * 8;
    wr64(addr, pte(pa, flags));
    return addr;
  }

  bool tr(uint64_t va, Access a, Translation& t, unsigned size = 8) {
    return hart.translate(va, a, size, t);
  }
  // Expects a fault with the given cause and tval = va.
  void expect_fault(uint64_t va, Access a, uint64_t cause) {
    Translation t{};
    hart.mcause = hart.mtval = 0;
    Priv before = hart.priv;
    EXPECT_FALSE(tr(va, a, t)) << std::hex << va;
    EXPECT_EQ(hart.mcause, cause) << std::hex << va;
    EXPECT_EQ(hart.mtval, va);
    hart.priv = before;
  }
};

}  // namespace nimbus::cpu::mmu_testing
