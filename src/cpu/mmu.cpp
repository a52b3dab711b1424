// Virtual-memory translation (the TLB's slow path): Sv39 and Sv48 page walks per Priv spec
// 1.12 section 4.3.2, followed by the PMP check of the final physical address.
//
// A/D policy: this hart updates A and D in hardware (the spec's "Svadu-like" option).
// A is set on any access, D on stores (including AMOs and SC, which arrive as kStore).
// The update is an atomic compare-and-swap on the host copy of the PTE (bus.ram_ptr), so
// it is atomic with respect to other harts and to the check of the PTE: if the PTE changed
// between the read and the CAS, the walk step is repeated with the new value. A PTE that
// needs updating but does not live in RAM (e.g. in MMIO space) raises an access fault, as
// does a PTE update that PMP forbids (implicit accesses are checked at S-mode privilege).
//
// Svpbmt and Svnapot are not implemented: PTE bits 63:54 must be zero, else page fault.
#include <cstdint>

#include "common/bits.h"
#include "cpu/hart.h"

namespace nimbus::cpu {

namespace {

constexpr uint64_t kPteV = 1 << 0, kPteR = 1 << 1, kPteW = 1 << 2, kPteX = 1 << 3;
constexpr uint64_t kPteU = 1 << 4, kPteA = 1 << 6, kPteD = 1 << 7;
constexpr uint64_t kPpnMask = (1ULL << 44) - 1;

uint64_t page_fault_cause(Access a) {
  switch (a) {
    case Access::kFetch:
      return kInsnPageFault;
    case Access::kLoad:
      return kLoadPageFault;
    case Access::kStore:
      return kStorePageFault;
  }
  return kLoadPageFault;
}

uint64_t access_fault_cause(Access a) {
  switch (a) {
    case Access::kFetch:
      return kInsnAccessFault;
    case Access::kLoad:
      return kLoadAccessFault;
    case Access::kStore:
      return kStoreAccessFault;
  }
  return kLoadAccessFault;
}

}  // namespace

bool Hart::translate(uint64_t vaddr, Access access, unsigned size, Translation& out) {
  Priv eff = priv;
  if (access != Access::kFetch && priv == kPrivM && (mstatus_ & mstatus::kMPRV)) {
    eff = static_cast<Priv>((mstatus_ & mstatus::kMPP) >> mstatus::kMPPShift);
  }
  const uint64_t mode = satp >> 60;

  uint64_t paddr;
  unsigned page_shift = 12;
  if (eff == kPrivM || mode == 0) {
    paddr = vaddr;
  } else {
    const int levels = mode == 9 ? 4 : 3;
    const unsigned va_bits = 12 + 9 * levels;
    if (static_cast<uint64_t>(sext(vaddr, va_bits)) != vaddr) {
      take_trap(page_fault_cause(access), vaddr);
      return false;
    }
    uint64_t table = (satp & kPpnMask) << 12;
    int level = levels - 1;
    uint64_t pte = 0, pte_addr = 0;
    for (;;) {
      pte_addr = table + bits(vaddr, 12 + 9 * level + 8, 12 + 9 * level) * 8;
    reread:
      if (!pmp_allows(pte_addr, 8, Access::kLoad, kPrivS) || !bus.read(pte_addr, 8, pte)) {
        take_trap(access_fault_cause(access), vaddr);
        return false;
      }
      if (!(pte & kPteV) || ((pte & (kPteR | kPteW)) == kPteW) || (pte >> 54) != 0) {
        take_trap(page_fault_cause(access), vaddr);
        return false;
      }
      if (pte & (kPteR | kPteX)) {
        // Leaf. Privilege: U-mode needs U=1; S-mode may touch U pages only for loads and
        // stores with SUM=1, never fetch them.
        bool ok;
        if (eff == kPrivU) {
          ok = (pte & kPteU) != 0;
        } else {
          ok = !(pte & kPteU) || (access != Access::kFetch && (mstatus_ & mstatus::kSUM));
        }
        if (ok) {
          switch (access) {
            case Access::kFetch:
              ok = (pte & kPteX) != 0;
              break;
            case Access::kLoad:
              ok = (pte & kPteR) || ((mstatus_ & mstatus::kMXR) && (pte & kPteX));
              break;
            case Access::kStore:
              ok = (pte & kPteW) != 0;
              break;
          }
        }
        const uint64_t ppn = (pte >> 10) & kPpnMask;
        if (level > 0 && (ppn & ((1ULL << (9 * level)) - 1)) != 0) ok = false;  // misaligned
        if (!ok) {
          take_trap(page_fault_cause(access), vaddr);
          return false;
        }
        const uint64_t want = pte | kPteA | (access == Access::kStore ? kPteD : 0);
        if (want != pte) {
          uint8_t* host = bus.ram_ptr(pte_addr, 8);
          if (host == nullptr || !pmp_allows(pte_addr, 8, Access::kStore, kPrivS)) {
            take_trap(access_fault_cause(access), vaddr);
            return false;
          }
          uint64_t expected = pte;
          if (!__atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(host), &expected, want,
                                           false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            goto reread;  // the PTE changed under us: redo this step with its new value
          }
          bus.mark_dirty(host, 8);  // the dirty-page log: A/D updates write guest RAM too
        }
        const unsigned offset_bits = 12 + 9 * level;
        page_shift = offset_bits;
        paddr =
            ((ppn << 12) & ~((1ULL << offset_bits) - 1)) | (vaddr & ((1ULL << offset_bits) - 1));
        break;
      }
      // Pointer to the next level.
      if (level == 0) {
        take_trap(page_fault_cause(access), vaddr);
        return false;
      }
      table = ((pte >> 10) & kPpnMask) << 12;
      level--;
    }
  }

  if (!pmp_allows(paddr, size, access, eff)) {
    take_trap(access_fault_cause(access), vaddr);
    return false;
  }
  out.paddr = paddr;
  out.page_uniform = pmp_page_uniform(paddr, eff);
  out.page_shift = page_shift;
  return true;
}

}  // namespace nimbus::cpu
