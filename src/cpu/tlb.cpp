// The software TLB's flushes: SFENCE.VMA, satp writes, the SBI's remote fences.
#include <initializer_list>

#include "cpu/hart.h"

namespace nimbus::cpu {

namespace {
// Hart::tlb_salt of an address space: odd multiples spread the tags over the index.
uint64_t salt_of(uint8_t tag) { return (tag * 37u) & (kTlbSize - 1); }
// The virtual page number in a TLB tag (below the context bits).
constexpr uint64_t kVpnMask = (uint64_t{1} << kTlbCtxShift) - 1;
// Remote fences of more pages than this drop the whole address space instead.
constexpr uint64_t kMaxRangePages = 64;

// Invalidates every entry of every address space (and forgets the superpage ranges).
void drop_all_entries(Hart& h) {
  for (unsigned i = 0; i < kTlbSize; i++) {
    h.tlb_fetch[i].tag = h.tlb_load[i].tag = h.tlb_store[i].tag = kTlbInvalid;
  }
  h.tlb_super_count = 0;
}
}  // namespace

void Hart::tlb_flush() {
  drop_all_entries(*this);
  tlb_spaces.reset();
  select_address_space();
}

void Hart::drop_store_translations() {
  for (unsigned i = 0; i < kTlbSize; i++) tlb_store[i].tag = kTlbInvalid;
}

void Hart::note_superpage(uint64_t va, unsigned shift) {
  const uint64_t lo = va & ~((uint64_t{1} << shift) - 1);
  const uint64_t hi = lo + ((uint64_t{1} << shift) - 1);
  unsigned nearest = 0;
  uint64_t best_gap = ~0ULL;
  for (unsigned i = 0; i < tlb_super_count; i++) {
    uint64_t& rlo = tlb_super_lo[i];
    uint64_t& rhi = tlb_super_hi[i];
    if (lo >= rlo && hi <= rhi) return;
    if (hi + 1 == rlo || rhi + 1 == lo || (lo <= rhi && hi >= rlo)) {  // touches: merge
      if (lo < rlo) rlo = lo;
      if (hi > rhi) rhi = hi;
      return;
    }
    const uint64_t gap = hi < rlo ? rlo - hi : lo - rhi;
    if (gap < best_gap) {
      best_gap = gap;
      nearest = i;
    }
  }
  if (tlb_super_count < kTlbSuperRanges) {
    tlb_super_lo[tlb_super_count] = lo;
    tlb_super_hi[tlb_super_count] = hi;
    tlb_super_count++;
    return;
  }
  if (lo < tlb_super_lo[nearest]) tlb_super_lo[nearest] = lo;
  if (hi > tlb_super_hi[nearest]) tlb_super_hi[nearest] = hi;
}

bool Hart::in_superpage(uint64_t va) const {
  for (unsigned i = 0; i < tlb_super_count; i++) {
    if (va >= tlb_super_lo[i] && va <= tlb_super_hi[i]) return true;
  }
  return false;
}

void Hart::select_address_space() {
  bool wipe = false;
  const uint8_t tag = tlb_spaces.select(satp, wipe);
  if (wipe) drop_all_entries(*this);
  tlb_space_ctx = uint64_t{tag} << kTlbSpaceShift;
  tlb_salt = salt_of(tag);
  update_tlb_context();
}

void Hart::sfence_vma(bool has_va, uint64_t va, bool has_asid, uint64_t asid) {
  if (has_va) {
    if (in_superpage(va)) {
      tlb_flush();  // a cached superpage may hold `va`: its slices sit in other slots
      return;
    }
    // Entries are 4 KiB slices indexed by the virtual page and the address space's salt:
    // in each address space in use, one slot can hold `va` (in any context).
    // Entries of other pages that share those slots stay.
    const uint64_t vpn = va >> 12;
    tlb_spaces.for_each_tag([&](uint8_t tag) {
      const unsigned i = (vpn ^ salt_of(tag)) & (kTlbSize - 1);
      for (TlbEntry* tlb : {tlb_fetch, tlb_load, tlb_store}) {
        if ((tlb[i].tag & kVpnMask) == vpn) tlb[i].tag = kTlbInvalid;
      }
    });
    return;
  }
  if (!has_asid) {
    tlb_flush();
    return;
  }
  const auto id = static_cast<uint16_t>(asid);
  tlb_spaces.retire_asid(id);
  if ((satp >> 60) != 0 && TlbSpaces::asid_of(satp) == id) select_address_space();
}

void Hart::sfence_vma_range(uint64_t start, uint64_t size, bool has_asid, uint64_t asid) {
  const uint64_t first = start & ~uint64_t{4095};
  const bool whole = (start == 0 && size == 0) || size == ~0ULL;
  if (whole || size == 0 || size > kMaxRangePages * 4096 || start + size < start) {
    sfence_vma(false, 0, has_asid, asid);
    return;
  }
  const uint64_t end = start + size;  // exclusive
  for (uint64_t page = first; page < end; page += 4096) sfence_vma(true, page, has_asid, asid);
}

}  // namespace nimbus::cpu
