#include "cpu/tlb_spaces.h"

namespace nimbus::cpu {

uint8_t TlbSpaces::select(uint64_t satp, bool& wipe) {
  wipe = false;
  ++clock_;
  Slot* victim = &slots_[0];
  for (Slot& s : slots_) {
    if (s.last_use != 0 && s.satp == satp) {
      s.last_use = clock_;
      return s.tag;
    }
    if (s.last_use < victim->last_use) victim = &s;
  }
  if (next_tag_ > kMaxTag) {
    // Every tag has been handed out: retired ones may still sit in TLB entries.
    wipe = true;
    reset();
    ++clock_;
    victim = &slots_[0];
  }
  victim->satp = satp;
  victim->last_use = clock_;
  victim->tag = static_cast<uint8_t>(next_tag_++);
  return victim->tag;
}

void TlbSpaces::retire_asid(uint16_t asid) {
  for (Slot& s : slots_) {
    if (s.last_use != 0 && (s.satp >> 60) != 0 && asid_of(s.satp) == asid) s = Slot{};
  }
}

void TlbSpaces::reset() {
  for (Slot& s : slots_) s = Slot{};
  clock_ = 0;
  next_tag_ = 1;
}

}  // namespace nimbus::cpu
