// Address-space tags for the software TLB.
//
// Each satp value a hart runs under (mode, ASID and root page table) gets a small tag that
// the TLB stores in every entry's tag word, so entries of several address spaces live side
// by side: a context switch (a satp write) keeps the entries of the process it leaves, and
// coming back finds them still cached, as on hardware with ASIDs. SFENCE.VMA with an ASID
// argument retires the tags of that ASID instead of wiping the whole TLB.
//
// A retired tag is never handed out again until every tag has been used; then select()
// reports that the caller must invalidate every entry, and numbering starts over. So an
// entry with a retired tag can never match again, and nothing has to be scanned.
#pragma once

#include <cstdint>

namespace nimbus::cpu {

class TlbSpaces {
 public:
  // Tags are 1..kMaxTag (8 bits in the TLB tag word; 0 is never used).
  static constexpr unsigned kMaxTag = 255;
  // satp values remembered at once; the least recently selected one is forgotten first.
  static constexpr unsigned kSlots = 16;

  // The tag for `satp`, handing out a new one if it has none. Sets `wipe` when the tags
  // ran out: every TLB entry must then be invalidated before the returned tag is used.
  uint8_t select(uint64_t satp, bool& wipe);

  // Forgets every satp value whose ASID is `asid` (and whose mode translates): their next
  // select() gets a fresh tag.
  void retire_asid(uint16_t asid);

  // Calls f(tag) for every tag in use (entries with other tags can never match again).
  template <typename F>
  void for_each_tag(F f) const {
    for (const Slot& s : slots_) {
      if (s.last_use != 0) f(s.tag);
    }
  }

  // Forgets everything (after the caller invalidated every entry): tags start over.
  void reset();

  // The ASID field of a satp value (Sv39/Sv48: bits 59:44).
  static uint16_t asid_of(uint64_t satp) { return static_cast<uint16_t>(satp >> 44); }

 private:
  struct Slot {
    uint64_t satp = 0;
    uint64_t last_use = 0;  // 0: empty
    uint8_t tag = 0;
  };
  Slot slots_[kSlots];
  uint64_t clock_ = 0;
  unsigned next_tag_ = 1;
};

}  // namespace nimbus::cpu
