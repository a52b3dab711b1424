// One RISC-V RV64GC hart: architectural state, CSRs, traps, MMU and the interpreter.
//
// Files and their jobs:
//   hart.h / hart.cpp   state, reset, the run loop's public face
//   interp.cpp          the engines (block interpreter, reference checker), TLB fast paths,
//                       instruction bodies
//   csr.cpp             CSR read/write with privilege checks (Priv spec ch. 2-4)
//   trap.cpp            exceptions, interrupts, delegation, MRET/SRET, WFI rules
//   mmu.cpp             Sv39/Sv48 page walks (the TLB's slow path)
//   pmp.cpp             physical memory protection
//   fpu.h / fpu.cpp     IEEE 754 arithmetic for F and D
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "cpu/tlb_spaces.h"
#include "mem/bus.h"

namespace nimbus::cpu {

enum Priv : uint8_t { kPrivU = 0, kPrivS = 1, kPrivM = 3 };

enum class Access : uint8_t { kFetch, kLoad, kStore };

// Exception codes (mcause with the interrupt bit clear). Priv spec table 3.6.
enum Exception : uint64_t {
  kInsnMisaligned = 0,
  kInsnAccessFault = 1,
  kIllegalInsn = 2,
  kBreakpoint = 3,
  kLoadMisaligned = 4,
  kLoadAccessFault = 5,
  kStoreMisaligned = 6,  // also AMO
  kStoreAccessFault = 7,
  kEcallFromU = 8,
  kEcallFromS = 9,
  kEcallFromM = 11,
  kInsnPageFault = 12,
  kLoadPageFault = 13,
  kStorePageFault = 15,
};

// Interrupt numbers (bit positions in mip/mie; mcause = (1<<63) | number).
enum Interrupt : unsigned {
  kIrqSSoft = 1,
  kIrqMSoft = 3,
  kIrqSTimer = 5,
  kIrqMTimer = 7,
  kIrqSExt = 9,
  kIrqMExt = 11,
};
constexpr uint64_t kInterruptBit = 1ULL << 63;

// mstatus fields (RV64). Priv spec 3.1.6.
namespace mstatus {
constexpr uint64_t kSIE = 1ULL << 1;
constexpr uint64_t kMIE = 1ULL << 3;
constexpr uint64_t kSPIE = 1ULL << 5;
constexpr uint64_t kUBE = 1ULL << 6;
constexpr uint64_t kMPIE = 1ULL << 7;
constexpr uint64_t kSPP = 1ULL << 8;
constexpr uint64_t kVS = 3ULL << 9;
constexpr uint64_t kMPP = 3ULL << 11;
constexpr unsigned kMPPShift = 11;
constexpr uint64_t kFS = 3ULL << 13;
constexpr unsigned kFSShift = 13;
constexpr uint64_t kXS = 3ULL << 15;
constexpr uint64_t kMPRV = 1ULL << 17;
constexpr uint64_t kSUM = 1ULL << 18;
constexpr uint64_t kMXR = 1ULL << 19;
constexpr uint64_t kTVM = 1ULL << 20;
constexpr uint64_t kTW = 1ULL << 21;
constexpr uint64_t kTSR = 1ULL << 22;
constexpr uint64_t kUXL = 3ULL << 32;
constexpr uint64_t kSXL = 3ULL << 34;
constexpr uint64_t kSBE = 1ULL << 36;
constexpr uint64_t kMBE = 1ULL << 37;
constexpr uint64_t kSD = 1ULL << 63;
}  // namespace mstatus

// A software TLB entry: a virtual page mapped straight to host memory.
// host address = vaddr + addend. tag = (vaddr >> 12) | context, or kTlbInvalid. The context
// (bits 52..55, see Hart::fetch_ctx/data_ctx) names the effective privilege and the
// mstatus bits the translation depended on, so entries of several modes live side by side
// and a privilege change or an mstatus write needs no flush. Bits 56..63 hold the address
// space's tag (TlbSpaces: one per satp value), so a satp write needs no flush either.
struct TlbEntry {
  uint64_t tag;
  uintptr_t addend;
};
constexpr uint64_t kTlbInvalid = ~0ULL;
constexpr unsigned kTlbSize = 4096;
constexpr unsigned kTlbCtxShift = 52;
constexpr unsigned kTlbSpaceShift = 56;

// Result of a translation done by the slow path.
struct Translation {
  uint64_t paddr;
  // True when the same translation and PMP verdict hold for the whole 4 KiB page, so the
  // TLB may cache it (false for example when a PMP region boundary splits the page).
  bool page_uniform;
  // log2 of the size of the page the leaf maps: 12, or 21/30/39 for a superpage
  // (SFENCE.VMA of one address must then drop the 4 KiB slices cached for the rest of that
  // superpage too).
  unsigned page_shift = 12;
};

class Hart;
struct AccessLog;

// What executes instructions for a hart: the block interpreter (interp.cpp), alone or with
// the JIT (jit/) compiling its hot blocks to host code. One virtual call per Hart::run(),
// never per instruction.
class ExecutionEngine {
 public:
  virtual ~ExecutionEngine() = default;
  // Same contract as Hart::run.
  virtual uint64_t run(Hart& hart, uint64_t max_insns) = 0;
  // Drops everything derived from guest memory (decoded blocks). Called on reset and by
  // flush_all_caches (e.g. after a snapshot restore overwrote RAM).
  virtual void flush() = 0;
  // Blocks compiled to host code so far (0 for engines without a JIT).
  virtual uint64_t compiled_blocks() const { return 0; }
};

enum class EngineKind : uint8_t {
  kInterpreter,     // predecoded blocks, TLB fast paths
  kJit,             // the same, with hot blocks compiled to x86-64 code (the interpreter
                    // runs whatever the JIT does not take; kInterpreter on other hosts)
  kCheckReference,  // the same, checked instruction by instruction against a plain
                    // reference path (no block cache, no TLB) on a shadow hart
  kCheckJit,        // kJit, checked against the same reference path: each run of compiled
                    // code as a whole (up to ~1000 instructions), the rest instruction by
                    // instruction as kCheckReference does
};

// interp.cpp: a new engine of that kind.
std::unique_ptr<ExecutionEngine> make_engine(EngineKind kind);

// How many times a block is entered before the JIT compiles it (engines made from now on;
// tests set 1 to compile everything at once).
void set_jit_hot_threshold(unsigned entries);
unsigned jit_hot_threshold();

// A FENCE.I for every hart at once (the SBI's remote FENCE.I; the machine calls this, the
// JIT's chain epoch stays the cpu's own): every hart sees code written before the call by
// the next block it enters. Compiled code's chained jumps are dropped (they are made again
// once the target's bytes are checked); blocks entered otherwise are checked anyway.
void fence_i_all_harts();

class Hart {
 public:
  Hart(mem::Bus& bus, uint64_t hartid);
  ~Hart();
  Hart(const Hart&) = delete;
  Hart& operator=(const Hart&) = delete;

  // The engine harts constructed from now on use (the CLI's --check-reference sets it
  // before the machine is built). kInterpreter unless changed.
  static void set_default_engine(EngineKind kind);
  static EngineKind default_engine();
  // Replaces this hart's engine.
  void set_engine(EngineKind kind);
  // Called by the kCheckReference engine at the first difference between the fast path
  // and the reference path, with a report (pc, instruction, what differs). The hart then
  // stops (run() returns at once from then on; `diverged` is set). When unset the report
  // goes to stderr and the process exits with status 1.
  std::function<void(const std::string& report)> on_divergence;
  bool diverged = false;

  // Puts the hart in its reset state: M-mode, pc = reset_pc, mstatus zeroed, TLB empty.
  void reset(uint64_t reset_pc);

  // Runs up to `max_insns` instructions; returns the number retired. Returns early when
  // the hart executes WFI with no interrupt pending (then `waiting` is true) or when
  // `stop_requested` becomes true.
  uint64_t run(uint64_t max_insns);

  // ---- architectural state (public for tests, tracing and the machine) ----
  uint64_t x[32] = {};
  uint64_t f[32] = {};  // NaN-boxed: singles live in the low 32 bits with the top all ones
  uint64_t pc = 0;
  Priv priv = kPrivM;

  // CSR storage. Views (sstatus, sie, sip, fflags, frm) are computed by csr.cpp.
  uint64_t mstatus_ = 0;  // SXL/UXL fixed to 2 (64-bit)
  uint64_t misa_ = 0;
  uint64_t medeleg = 0, mideleg = 0;
  uint64_t mie = 0;
  // Pending interrupts. Devices on other threads set/clear bits atomically
  // (set_interrupt_pending); software-writable bits go through csr_write.
  std::atomic<uint64_t> mip{0};
  uint64_t mtvec = 0, stvec = 0;
  uint64_t mscratch = 0, sscratch = 0;
  uint64_t mepc = 0, sepc = 0;
  uint64_t mcause = 0, scause = 0;
  uint64_t mtval = 0, stval = 0;
  uint64_t mcounteren = 0, scounteren = 0, mcountinhibit = 0;
  uint64_t menvcfg = 0, senvcfg = 0;
  uint64_t satp = 0;
  uint32_t fflags = 0;   // accrued exception flags, 5 bits
  uint32_t frm = 0;      // dynamic rounding mode, 3 bits
  uint64_t cycle = 0;    // mcycle; advanced with instret (one cycle per instruction)
  uint64_t instret = 0;  // minstret
  uint8_t pmpcfg[16] = {};
  uint64_t pmpaddr[16] = {};
  const uint64_t hartid;

  // LR/SC reservation: the reserved location (its host address) and the value LR read.
  bool reservation_valid = false;
  uint64_t reservation_addr = 0;
  uint64_t reservation_value = 0;

  // Incremented by take_trap (the tracer does not print trapping instructions as retired).
  uint64_t trap_count = 0;
  // When set, run() prints one line per retired instruction here (slow path).
  std::FILE* trace_out = nullptr;

  // Set by WFI when it stalls; cleared when an interrupt becomes pending.
  bool waiting = false;
  std::atomic<bool> stop_requested{false};

  // Built-in firmware: when set, an ECALL from S-mode calls this instead of trapping to
  // M-mode (the machine's SBI implementation; it writes a0/a1 and execution continues
  // after the ECALL).
  std::function<void(Hart&)> sbi_handler;

  // Source of the `time` CSR (10 MHz ticks); set by the machine. Zero when unset.
  std::function<uint64_t()> time_source;

  mem::Bus& bus;

  // ---- interface between the interpreter and the privileged architecture ----

  // csr.cpp. Both check privilege (csr[9:8] <= priv), existence and, for writes,
  // read-only-ness (csr[11:10] == 3), mstatus.TVM for satp, counter enables, FS for the
  // FP CSRs. false means the caller raises an illegal-instruction exception.
  bool csr_read(unsigned csr, uint64_t& value);
  bool csr_write(unsigned csr, uint64_t value);

  // trap.cpp. Takes an exception (cause < 64) or interrupt (cause has kInterruptBit)
  // at the instruction at `pc`: delegation, xepc/xcause/xtval, status stack, new priv,
  // and sets next_pc to the handler (vectored for interrupts when xtvec.MODE == 1).
  void take_trap(uint64_t cause, uint64_t tval);
  // Takes the highest-priority pending and enabled interrupt, if any (Priv spec 3.1.9).
  // Returns true when it took one.
  bool check_interrupts();
  // True if some interrupt is pending and enabled in mie, regardless of global enables
  // (the condition that wakes WFI).
  bool interrupt_wakeup_pending() const { return (mip.load(std::memory_order_relaxed) & mie) != 0; }
  // MRET/SRET: false if illegal here (privilege, TSR), else performs the return and sets
  // next_pc.
  bool mret();
  bool sret();
  // WFI legality (TW, U-mode). Priv spec 3.1.6.5.
  bool wfi_allowed() const;
  // SFENCE.VMA legality (TVM, U-mode).
  bool sfence_allowed() const;

  // Devices raise and lower interrupt lines (MTIP, MSIP, MEIP, SEIP) from any thread.
  void set_interrupt_pending(unsigned irq, bool level);

  // mmu.cpp. Translates `vaddr` for `access` at the effective privilege (MPRV applies to
  // loads and stores), walks Sv39/Sv48 page tables, updates A/D bits, and checks PMP on
  // the page-table accesses and the final address. On failure it raises the right fault
  // with tval = vaddr via take_trap and returns false. `size` is the access width (PMP
  // checks the whole access).
  bool translate(uint64_t vaddr, Access access, unsigned size, Translation& out);

  // pmp.cpp. True if a `size`-byte access at `paddr` is allowed at privilege `priv`.
  bool pmp_allows(uint64_t paddr, unsigned size, Access access, Priv priv) const;
  // True if the PMP verdict is the same for every byte of the 4 KiB page at `paddr`.
  bool pmp_page_uniform(uint64_t paddr, Priv priv) const;

  // hart.cpp, the software TLB. Forgets every cached translation of every address space.
  // Called on SFENCE.VMA without arguments and on PMP writes.
  void tlb_flush();
  // SFENCE.VMA rs1, rs2. With has_va only the translations of `va` go, in every address
  // space (every slice of the superpage holding `va`, when one is cached). With has_asid
  // and no address, the translations of that ASID go (global ones too: dropping more than
  // asked is allowed). Neither: everything.
  void sfence_vma(bool has_va, uint64_t va, bool has_asid = false, uint64_t asid = 0);
  // The SBI's remote SFENCE.VMA on this hart: the pages of [start, start + size), or the
  // whole address space when size is 0 or all-ones (then as sfence_vma without address).
  void sfence_vma_range(uint64_t start, uint64_t size, bool has_asid, uint64_t asid);
  // satp was written: entries are now tagged (and looked up) with the tag of its value.
  void select_address_space();
  // tlb_fill cached a 4 KiB slice of a superpage (2^shift bytes) at `va`.
  void note_superpage(uint64_t va, unsigned shift);
  // True if `va` lies in a range noted above.
  bool in_superpage(uint64_t va) const;
  // Drops every cached writable host pointer into guest RAM: the store TLB entries (the
  // interpreter's and the JIT's fast stores, AMOs and SC all look there). The dirty-page
  // log relies on it: a store entry is marked when filled, and taking the log drops them
  // (VirtMachine::take_dirty_pages). Loads, fetches and the LR reservation stay (SC
  // writes through the store TLB).
  void drop_store_translations();
  // Drops every TLB entry and every decoded block of this hart (snapshot restore calls it
  // after overwriting RAM and the hart's state).
  void flush_all_caches();
  // Recomputes fetch_ctx/data_ctx from priv and mstatus. trap.cpp and csr.cpp call it
  // when those change; run() calls it on entry (tests and the machine set priv directly).
  void update_tlb_context() {
    fetch_ctx = (uint64_t{priv} << kTlbCtxShift) | tlb_space_ctx;
    Priv eff = priv;
    if (priv == kPrivM && (mstatus_ & mstatus::kMPRV)) {
      eff = static_cast<Priv>((mstatus_ & mstatus::kMPP) >> mstatus::kMPPShift);
    }
    uint64_t c = eff;
    if (eff == kPrivS && (mstatus_ & mstatus::kSUM)) c |= 4;
    if (eff != kPrivM && (mstatus_ & mstatus::kMXR)) c |= 8;
    data_ctx = (c << kTlbCtxShift) | tlb_space_ctx;
  }

  // mstatus.FS = Dirty (and SD), after an instruction writes FP state.
  void mark_fs_dirty() { mstatus_ |= mstatus::kFS | mstatus::kSD; }
  bool fs_enabled() const { return (mstatus_ & mstatus::kFS) != 0; }

  // Where execution continues after the current instruction; take_trap, mret and sret
  // set it.
  uint64_t next_pc = 0;
  // Set when the interpreter must leave its inner loop after this instruction (CSR
  // writes, traps, xRET) so that interrupts are checked again.
  bool break_block = false;

  // interp.cpp internal: the software TLBs (tags include the context below).
  TlbEntry tlb_fetch[kTlbSize];
  TlbEntry tlb_load[kTlbSize];
  TlbEntry tlb_store[kTlbSize];
  uint64_t fetch_ctx = 0;      // context of fetches: priv, address space
  uint64_t data_ctx = 0;       // context of loads/stores: effective priv (MPRV), SUM, MXR, space
  uint64_t tlb_space_ctx = 0;  // the current address space's tag << kTlbSpaceShift
  // XORed into the slot index, different for each address space, so that the same
  // virtual page of two address spaces (a kernel page, or two processes' text) does not
  // compete for one slot.
  uint64_t tlb_salt = 0;
  unsigned tlb_slot(uint64_t va) const { return ((va >> 12) ^ tlb_salt) & (kTlbSize - 1); }
  TlbSpaces tlb_spaces;
  // Virtual ranges [lo, hi] covering the superpages that cached slices came from: an
  // SFENCE.VMA of an address inside one flushes everything. A superpage that fits no range
  // widens the nearest one when all are in use.
  static constexpr unsigned kTlbSuperRanges = 8;
  uint64_t tlb_super_lo[kTlbSuperRanges] = {}, tlb_super_hi[kTlbSuperRanges] = {};
  unsigned tlb_super_count = 0;

  // interp.cpp / jit internal: the native code's loop budget. Before a compiled block
  // runs, the instructions its loops may retire before it must return (jit_loop_limit);
  // after, how many they retired (jit_loop_done).
  uint64_t jit_loop_limit = 0;
  uint64_t jit_loop_done = 0;
  // Compiled FP code runs with the host MXCSR in the guest's rounding mode (frm), its
  // exception flags accruing there; jit_fp_live says it was set up in this call (and
  // the block loop folds the flags into fflags and restores the host's MXCSR after it).
  // jit_mxcsr is scratch for the value loaded.
  uint32_t jit_fp_live = 0;
  uint32_t jit_mxcsr = 0;

  // The time CSR's value: time_source, which the reference checker records on the fast
  // path and replays on the reference path like a device read (interp.cpp).
  uint64_t read_time();

  // interp.cpp internal: the engine, and the access log of the reference checker (null
  // unless kCheckReference or kCheckJit runs).
  std::unique_ptr<ExecutionEngine> engine;
  AccessLog* access_log = nullptr;
};

}  // namespace nimbus::cpu
