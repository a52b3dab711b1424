// Traps: exceptions, interrupts, delegation to S-mode, MRET/SRET and the WFI/SFENCE.VMA
// legality rules. Priv spec 1.12 sections 3.1.6-3.1.9, 3.3.2, 4.1.
#include <cstdint>

#include "cpu/hart.h"

namespace nimbus::cpu {

using namespace mstatus;

void Hart::take_trap(uint64_t cause, uint64_t tval) {
  const bool interrupt = (cause & kInterruptBit) != 0;
  const uint64_t code = cause & ~kInterruptBit;
  const Priv old = priv;
  ++trap_count;
  // Traps never go to a less privileged mode: only traps taken in S or U may be delegated.
  bool delegate = false;
  if (old <= kPrivS && code < 64) delegate = (((interrupt ? mideleg : medeleg) >> code) & 1) != 0;

  uint64_t tvec;
  if (delegate) {
    scause = cause;
    sepc = pc & ~1ULL;
    stval = tval;
    uint64_t s = mstatus_ & ~(kSPIE | kSIE | kSPP);
    if (mstatus_ & kSIE) s |= kSPIE;
    if (old == kPrivS) s |= kSPP;
    mstatus_ = s;
    priv = kPrivS;
    tvec = stvec;
  } else {
    mcause = cause;
    mepc = pc & ~1ULL;
    mtval = tval;
    uint64_t s = mstatus_ & ~(kMPIE | kMIE | kMPP);
    if (mstatus_ & kMIE) s |= kMPIE;
    s |= uint64_t{old} << kMPPShift;
    mstatus_ = s;
    priv = kPrivM;
    tvec = mtvec;
  }
  const uint64_t base = tvec & ~3ULL;
  next_pc = (interrupt && (tvec & 3) == 1) ? base + 4 * code : base;
  if (priv != old) update_tlb_context();
  break_block = true;
  waiting = false;
}

bool Hart::check_interrupts() {
  const uint64_t pending = mip.load(std::memory_order_relaxed) & mie;
  if (pending == 0) return false;
  // Interrupts targeting M (not delegated) and S (delegated). An interrupt is never taken
  // while running in a mode more privileged than its target; in a less privileged mode it
  // is always enabled; in the target mode the global xIE bit decides.
  const uint64_t m_level = pending & ~mideleg;
  const uint64_t s_level = pending & mideleg;
  const bool m_enabled = priv < kPrivM || (mstatus_ & kMIE) != 0;
  const bool s_enabled = priv < kPrivS || (priv == kPrivS && (mstatus_ & kSIE) != 0);
  // Priv spec 3.1.9: MEI, MSI, MTI, SEI, SSI, STI; interrupts for M before those for S.
  static constexpr unsigned kOrder[] = {kIrqMExt, kIrqMSoft, kIrqMTimer,
                                        kIrqSExt, kIrqSSoft, kIrqSTimer};
  for (uint64_t set : {m_enabled ? m_level : 0, s_enabled ? s_level : 0}) {
    if (set == 0) continue;
    for (unsigned irq : kOrder) {
      if ((set >> irq) & 1) {
        take_trap(kInterruptBit | irq, 0);
        return true;
      }
    }
  }
  return false;
}

bool Hart::mret() {
  if (priv != kPrivM) return false;
  const Priv target = static_cast<Priv>((mstatus_ & kMPP) >> kMPPShift);
  uint64_t s = mstatus_ & ~(kMIE | kMPP);
  if (mstatus_ & kMPIE) s |= kMIE;
  s |= kMPIE;  // MPP = U (0)
  if (target != kPrivM) s &= ~kMPRV;
  mstatus_ = s;
  priv = target;
  next_pc = mepc;
  update_tlb_context();
  break_block = true;
  return true;
}

bool Hart::sret() {
  if (priv == kPrivU) return false;
  if (priv == kPrivS && (mstatus_ & kTSR)) return false;
  const Priv target = (mstatus_ & kSPP) ? kPrivS : kPrivU;
  uint64_t s = mstatus_ & ~(kSIE | kSPP | kMPRV);  // SPP = U; new priv is never M
  if (mstatus_ & kSPIE) s |= kSIE;
  s |= kSPIE;
  mstatus_ = s;
  priv = target;
  next_pc = sepc;
  update_tlb_context();
  break_block = true;
  return true;
}

bool Hart::wfi_allowed() const {
  if (priv == kPrivM) return true;
  if (priv == kPrivU) return false;
  return (mstatus_ & kTW) == 0;
}

bool Hart::sfence_allowed() const {
  if (priv == kPrivU) return false;
  if (priv == kPrivS) return (mstatus_ & kTVM) == 0;
  return true;
}

}  // namespace nimbus::cpu
