// CSR access: existence, privilege and read-only checks, counter enables, and the WARL
// rules of each register. Priv spec 1.12 chapters 2 (CSR address map), 3 (machine level)
// and 4 (supervisor level).
//
// Implementation choices (see also docs):
//   * satp.ASID implements all 16 bits (ASIDLEN = 16). A satp write flushes nothing: TLB
//     entries are tagged by address space (satp value, see tlb_spaces.h), and SFENCE.VMA
//     with an ASID drops that ASID's entries.
//   * Debug triggers: tselect/tdata1/tdata2/tdata3 exist as "no triggers": tselect reads 0
//     and ignores writes, tdata1 reads 0 (type 0 = no trigger at this index), the others
//     read 0; all writes are ignored. Debug-mode-only CSRs (0x7B0..) do not exist.
//   * PMP: 16 entries (pmpcfg0, pmpcfg2, pmpaddr0-15). pmpcfg4..14 (even) and
//     pmpaddr16-63 exist, read as zero and ignore writes, so software probing the number
//     of entries sees 16. Odd pmpcfg numbers are illegal on RV64.
//   * mip.STIP and mip.SEIP are writable by M-mode software; MSIP/MTIP/MEIP are driven by
//     devices only (set_interrupt_pending).
//   * medeleg: exceptions 0-15 are delegatable except 11 (ECALL from M), which is read-only 0.
#include <cstdint>

#include "common/bits.h"
#include "cpu/hart.h"

namespace nimbus::cpu {

namespace {

namespace csrno {
constexpr unsigned kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003;
constexpr unsigned kSstatus = 0x100, kSie = 0x104, kStvec = 0x105, kScounteren = 0x106;
constexpr unsigned kSenvcfg = 0x10A;
constexpr unsigned kSscratch = 0x140, kSepc = 0x141, kScause = 0x142, kStval = 0x143;
constexpr unsigned kSip = 0x144, kSatp = 0x180;
constexpr unsigned kMstatus = 0x300, kMisa = 0x301, kMedeleg = 0x302, kMideleg = 0x303;
constexpr unsigned kMie = 0x304, kMtvec = 0x305, kMcounteren = 0x306, kMenvcfg = 0x30A;
constexpr unsigned kMcountinhibit = 0x320;
constexpr unsigned kMscratch = 0x340, kMepc = 0x341, kMcause = 0x342, kMtval = 0x343;
constexpr unsigned kMip = 0x344;
constexpr unsigned kPmpcfg0 = 0x3A0, kPmpaddr0 = 0x3B0;
constexpr unsigned kTselect = 0x7A0, kTdata1 = 0x7A1, kTdata3 = 0x7A3;
constexpr unsigned kMcycle = 0xB00, kMinstret = 0xB02;
constexpr unsigned kCycle = 0xC00, kTime = 0xC01, kInstret = 0xC02;
constexpr unsigned kMvendorid = 0xF11, kMarchid = 0xF12, kMimpid = 0xF13, kMhartid = 0xF14;
constexpr unsigned kMconfigptr = 0xF15;
}  // namespace csrno

using namespace mstatus;

// mstatus bits software may write directly.
constexpr uint64_t kMstatusWritable =
    kSIE | kMIE | kSPIE | kMPIE | kSPP | kMPP | kFS | kMPRV | kSUM | kMXR | kTVM | kTW | kTSR;
// Bits visible through sstatus and the subset writable through it.
constexpr uint64_t kSstatusVisible =
    kSIE | kSPIE | kUBE | kSPP | kVS | kFS | kXS | kSUM | kMXR | kUXL | kSD;
constexpr uint64_t kSstatusWritable = kSIE | kSPIE | kSPP | kFS | kSUM | kMXR;
constexpr uint64_t kMstatusFixed = (2ULL << 32) | (2ULL << 34);  // UXL = SXL = 2 (64-bit)

constexpr uint64_t kSsip = 1ULL << kIrqSSoft, kStip = 1ULL << kIrqSTimer;
constexpr uint64_t kSeip = 1ULL << kIrqSExt;
constexpr uint64_t kSInterrupts = kSsip | kStip | kSeip;
constexpr uint64_t kAllInterrupts =
    kSInterrupts | (1ULL << kIrqMSoft) | (1ULL << kIrqMTimer) | (1ULL << kIrqMExt);
constexpr uint64_t kMedelegWritable = 0xFFFFULL & ~(1ULL << kEcallFromM);

constexpr uint64_t kSatpPpnMask = (1ULL << 44) - 1;
constexpr uint64_t kSatpAsidMask = 0xFFFFULL << 44;  // ASIDLEN = 16
constexpr uint64_t kPmpaddrMask = (1ULL << 54) - 1;

constexpr uint64_t kEnvcfgFiom = 1;

// Normalises a value for mstatus storage: fixed fields and SD (= FS dirty; VS and XS are 0).
uint64_t normalise_mstatus(uint64_t v) {
  v = (v & kMstatusWritable) | kMstatusFixed;
  if ((v & kFS) == kFS) v |= kSD;
  return v;
}

// xtvec WARL: MODE 0 (direct) or 1 (vectored); any other mode keeps the old one.
uint64_t write_tvec(uint64_t old, uint64_t v) {
  uint64_t mode = v & 3;
  if (mode >= 2) mode = old & 3;
  return (v & ~3ULL) | mode;
}

}  // namespace

bool Hart::csr_read(unsigned csr, uint64_t& value) {
  using namespace csrno;
  csr &= 0xFFF;
  if (bits(csr, 9, 8) > priv) return false;

  // Unprivileged counters: gated by mcounteren (S, U) and scounteren (U).
  if (csr >= kCycle && csr <= kCycle + 31) {
    unsigned idx = csr - kCycle;
    if (priv < kPrivM && !bit(mcounteren, idx)) return false;
    if (priv < kPrivS && !bit(scounteren, idx)) return false;
    switch (csr) {
      case kCycle:
        value = cycle;
        break;
      case kTime:
        value = read_time();
        break;
      case kInstret:
        value = instret;
        break;
      default:
        value = 0;
        break;  // hpmcounter3..31
    }
    return true;
  }
  if (csr >= kMcycle && csr <= kMcycle + 31) {
    if (csr == kMcycle + 1) return false;  // 0xB01 does not exist
    value = csr == kMcycle ? cycle : csr == kMinstret ? instret : 0;
    return true;
  }
  if (csr >= 0x323 && csr <= 0x33F) {  // mhpmevent3..31
    value = 0;
    return true;
  }
  if (csr >= kPmpcfg0 && csr <= kPmpcfg0 + 15) {
    unsigned n = csr - kPmpcfg0;
    if (n & 1) return false;  // RV64: odd pmpcfg registers do not exist
    value = 0;
    if (n < 4) {
      for (unsigned i = 0; i < 8; i++) value |= uint64_t{pmpcfg[n * 4 + i]} << (8 * i);
    }
    return true;
  }
  if (csr >= kPmpaddr0 && csr <= kPmpaddr0 + 63) {
    unsigned n = csr - kPmpaddr0;
    value = n < 16 ? pmpaddr[n] : 0;
    return true;
  }

  switch (csr) {
    case kFflags:
    case kFrm:
    case kFcsr:
      if (!fs_enabled()) return false;
      value = csr == kFflags ? fflags : csr == kFrm ? frm : (frm << 5) | fflags;
      return true;
    case kSstatus:
      value = normalise_mstatus(mstatus_) & kSstatusVisible;
      return true;
    case kSie:
      value = mie & mideleg;
      return true;
    case kStvec:
      value = stvec;
      return true;
    case kScounteren:
      value = scounteren;
      return true;
    case kSenvcfg:
      value = senvcfg;
      return true;
    case kSscratch:
      value = sscratch;
      return true;
    case kSepc:
      value = sepc;
      return true;
    case kScause:
      value = scause;
      return true;
    case kStval:
      value = stval;
      return true;
    case kSip:
      value = mip.load(std::memory_order_relaxed) & mideleg;
      return true;
    case kSatp:
      if (priv == kPrivS && (mstatus_ & kTVM)) return false;
      value = satp;
      return true;
    case kMstatus:
      value = normalise_mstatus(mstatus_);
      return true;
    case kMisa:
      value = misa_;
      return true;
    case kMedeleg:
      value = medeleg;
      return true;
    case kMideleg:
      value = mideleg;
      return true;
    case kMie:
      value = mie;
      return true;
    case kMtvec:
      value = mtvec;
      return true;
    case kMcounteren:
      value = mcounteren;
      return true;
    case kMenvcfg:
      value = menvcfg;
      return true;
    case kMcountinhibit:
      value = mcountinhibit;
      return true;
    case kMscratch:
      value = mscratch;
      return true;
    case kMepc:
      value = mepc;
      return true;
    case kMcause:
      value = mcause;
      return true;
    case kMtval:
      value = mtval;
      return true;
    case kMip:
      value = mip.load(std::memory_order_relaxed) & kAllInterrupts;
      return true;
    case kTselect:
    case kTdata1:
    case kTdata1 + 1:
    case kTdata3:
      value = 0;
      return true;
    case kMvendorid:
    case kMarchid:
    case kMimpid:
    case kMconfigptr:
      value = 0;
      return true;
    case kMhartid:
      value = hartid;
      return true;
    default:
      return false;
  }
}

bool Hart::csr_write(unsigned csr, uint64_t value) {
  using namespace csrno;
  csr &= 0xFFF;
  if (bits(csr, 9, 8) > priv) return false;
  if (bits(csr, 11, 10) == 3) return false;  // read-only CSR

  bool ok = true;
  if (csr >= kMcycle && csr <= kMcycle + 31) {
    if (csr == kMcycle + 1) return false;
    if (csr == kMcycle)
      cycle = value;
    else if (csr == kMinstret)
      instret = value;
    // mhpmcounter3..31: read-only zero, writes ignored.
  } else if (csr >= 0x323 && csr <= 0x33F) {
    // mhpmevent3..31: writes ignored.
  } else if (csr >= kPmpcfg0 && csr <= kPmpcfg0 + 15) {
    unsigned n = csr - kPmpcfg0;
    if (n & 1) return false;
    if (n < 4) {
      for (unsigned i = 0; i < 8; i++) {
        unsigned e = n * 4 + i;
        if (pmpcfg[e] & 0x80) continue;                             // locked
        uint8_t c = static_cast<uint8_t>(value >> (8 * i)) & 0x9F;  // bits 6:5 are WIRI zero
        if ((c & 3) == 2) c &= ~3;  // W=1,R=0 is reserved: store R=W=0
        pmpcfg[e] = c;
      }
      tlb_flush();
    }
  } else if (csr >= kPmpaddr0 && csr <= kPmpaddr0 + 63) {
    unsigned n = csr - kPmpaddr0;
    if (n < 16) {
      bool locked = (pmpcfg[n] & 0x80) != 0;
      if (n + 1 < 16 && (pmpcfg[n + 1] & 0x80) && ((pmpcfg[n + 1] >> 3) & 3) == 1) locked = true;
      if (!locked) pmpaddr[n] = value & kPmpaddrMask;
      tlb_flush();
    }
  } else {
    switch (csr) {
      case kFflags:
      case kFrm:
      case kFcsr:
        if (!fs_enabled()) return false;
        if (csr == kFflags) {
          fflags = value & 0x1F;
        } else if (csr == kFrm) {
          frm = value & 7;
        } else {
          fflags = value & 0x1F;
          frm = (value >> 5) & 7;
        }
        mark_fs_dirty();
        break;
      case kSstatus:
        mstatus_ = normalise_mstatus((mstatus_ & ~kSstatusWritable) | (value & kSstatusWritable));
        update_tlb_context();
        break;
      case kSie:
        mie = (mie & ~mideleg) | (value & mideleg & kSInterrupts);
        break;
      case kStvec:
        stvec = write_tvec(stvec, value);
        break;
      case kScounteren:
        scounteren = value & 0xFFFFFFFFULL;
        break;
      case kSenvcfg:
        senvcfg = value & kEnvcfgFiom;
        break;
      case kSscratch:
        sscratch = value;
        break;
      case kSepc:
        sepc = value & ~1ULL;
        break;
      case kScause:
        scause = value;
        break;
      case kStval:
        stval = value;
        break;
      case kSip: {
        // Only SSIP is writable through sip, and only when delegated.
        uint64_t mask = mideleg & kSsip;
        if (value & mask) {
          mip.fetch_or(mask, std::memory_order_relaxed);
        } else if (mask) {
          mip.fetch_and(~mask, std::memory_order_relaxed);
        }
        break;
      }
      case kSatp: {
        if (priv == kPrivS && (mstatus_ & kTVM)) return false;
        uint64_t mode = value >> 60;
        if (mode == 0 || mode == 8 || mode == 9) {
          satp = (value & (0xFULL << 60)) | (value & kSatpAsidMask) | (value & kSatpPpnMask);
        }
        select_address_space();  // no flush: entries are tagged by address space
        break;
      }
      case kMstatus: {
        uint64_t v = value;
        if (((v & kMPP) >> kMPPShift) == 2) v = (v & ~kMPP) | (mstatus_ & kMPP);  // WARL
        mstatus_ = normalise_mstatus(v);
        update_tlb_context();
        break;
      }
      case kMisa:
        break;  // read-only value, writes legal and ignored
      case kMedeleg:
        medeleg = value & kMedelegWritable;
        break;
      case kMideleg:
        mideleg = value & kSInterrupts;
        break;
      case kMie:
        mie = value & kAllInterrupts;
        break;
      case kMtvec:
        mtvec = write_tvec(mtvec, value);
        break;
      case kMcounteren:
        mcounteren = value & 0xFFFFFFFFULL;
        break;
      case kMenvcfg:
        menvcfg = value & kEnvcfgFiom;
        break;
      case kMcountinhibit:
        mcountinhibit = value & 0x5;
        break;
      case kMscratch:
        mscratch = value;
        break;
      case kMepc:
        mepc = value & ~1ULL;
        break;
      case kMcause:
        mcause = value;
        break;
      case kMtval:
        mtval = value;
        break;
      case kMip: {
        // SSIP/STIP/SEIP are software-writable; device-driven bits set concurrently by
        // other threads must survive, hence the CAS loop touching only the writable bits.
        uint64_t old = mip.load(std::memory_order_relaxed);
        uint64_t desired;
        do {
          desired = (old & ~kSInterrupts) | (value & kSInterrupts);
        } while (!mip.compare_exchange_weak(old, desired, std::memory_order_relaxed));
        break;
      }
      case kTselect:
      case kTdata1:
      case kTdata1 + 1:
      case kTdata3:
        break;  // no triggers: writes ignored
      default:
        ok = false;
        break;
    }
  }
  if (ok) break_block = true;
  return ok;
}

}  // namespace nimbus::cpu
