// Templates per instruction. Host register conventions inside compiled code:
//   rbp   the Hart
//   rbx   instructions retired in this call and not yet counted by the interpreter:
//         completed native loop iterations and blocks left through chained exits
//         (returned in jit_loop_done)
//   [rsp] the guest address of the running block's first instruction (bpc)
//   [rsp+8] the running block (its `block` id), [rsp+16] the ChainOut to fill on return
//   [rsp+24] on: the page slots of loads and stores (kSiteSlots pairs: a page's guest
//         address, its TLB addend; see kSiteSlots and tlb_check)
//   rax, rcx, rdx  scratch
//   r12-r15, rsi, rdi, r8-r11  guest registers, allocated per block by use count
// The code after the prologue is straight-line in block order; everything rare (slow
// paths, exits) is emitted after it ("cold" code), so a block that runs to its end falls
// through without a taken jump.
#include "cpu/jit/compiler.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <vector>

#include "cpu/hart.h"
#include "cpu/isa/insn_class.h"
#include "cpu/jit/code_arena.h"
#include "cpu/jit/x86_emitter.h"

namespace nimbus::cpu::jit {

using isa::Decoded;
using isa::Op;

Layout layout_of(const Hart& h) {
  const char* base = reinterpret_cast<const char*>(&h);
  auto at = [base](const void* p) {
    return static_cast<int32_t>(reinterpret_cast<const char*>(p) - base);
  };
  return Layout{at(&h.x[0]),          at(&h.next_pc),      at(&h.data_ctx),
                at(&h.tlb_load[0]),   at(&h.tlb_store[0]), at(&h.jit_loop_limit),
                at(&h.jit_loop_done), at(&h.tlb_salt),     at(&h.fetch_ctx),
                at(&h.tlb_fetch[0]),  at(&h.f[0]),         at(&h.frm),
                at(&h.mstatus_),      at(&h.jit_fp_live),  at(&h.jit_mxcsr),
                Layout::BlockTable{}, Layout::Shared{}};
}

bool host_has_fma() {
  static const bool fma = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") != 0;
  }();
  return fma;
}

std::atomic<uint64_t> g_chain_epoch{1};

namespace {

// The patchable fields of a chainable exit's stub, as distances from its start (see
// Compiler::chain_exit, which checks that its encodings put them there).
constexpr int kStubBudget = 3;  // disp32 of lea rax, [rbx + retired + successor's length]
constexpr int kStubEpoch = 33;  // imm32 of cmp dword [&g_chain_epoch], epoch
constexpr int kStubJump = 60;   // rel32 of the final jmp (to the successor's chain entry)
constexpr int kStubEnd = 64;    // the end of that jmp
constexpr int kStubKey = -17;   // imm64 of the mov of the successor's host address (cross-page)
constexpr int32_t kUnlinked = 0x7fffffff;  // a budget no run has

}  // namespace

namespace {

// What an instruction reads and writes among the integer registers.
struct Uses {
  bool rs1, rs2, rd;
};

// The JIT compiles the instructions whose table row says jit = yes, by the rules of their
// class (isa/insn_class.h): how they use the registers, where they end the compiled code.
using isa::Class;

// The integer registers an F/D instruction uses (its other operands are f registers):
// the address of a load or store, the source of a move or conversion into an f register,
// the destination of a move, comparison or conversion out of one.
Uses fp_int_uses(Op op) {
  switch (op) {
    case Op::flw:
    case Op::fld:
    case Op::fsw:
    case Op::fsd:
    case Op::fmv_w_x:
    case Op::fmv_d_x:
    case Op::fcvt_s_w:
    case Op::fcvt_s_wu:
    case Op::fcvt_s_l:
    case Op::fcvt_s_lu:
    case Op::fcvt_d_w:
    case Op::fcvt_d_wu:
    case Op::fcvt_d_l:
    case Op::fcvt_d_lu:
      return {true, false, false};
    case Op::fmv_x_w:
    case Op::fmv_x_d:
    case Op::fclass_s:
    case Op::fclass_d:
    case Op::feq_s:
    case Op::flt_s:
    case Op::fle_s:
    case Op::feq_d:
    case Op::flt_d:
    case Op::fle_d:
    case Op::fcvt_w_s:
    case Op::fcvt_wu_s:
    case Op::fcvt_l_s:
    case Op::fcvt_lu_s:
    case Op::fcvt_w_d:
    case Op::fcvt_wu_d:
    case Op::fcvt_l_d:
    case Op::fcvt_lu_d:
      return {false, false, true};
    default:
      return {false, false, false};
  }
}

// Whether the JIT takes this instruction: its row says jit = yes and, for the F and D
// rows, the host can do it exactly with the rounding mode compiled code runs in (the
// guest's frm, set in the host's MXCSR while compiled code runs): a static rounding mode
// only where the result does not depend on it (exact conversions) or a truncating
// conversion to an integer (RTZ, the C cast) can use it; the fused multiply-adds need FMA3.
bool takes(const Decoded& d) {
  if (!isa::jit_compiled(d.op)) return false;
  if (isa::class_of(d.op) != Class::FP) return true;
  const bool dyn = d.rm == 7;
  switch (d.op) {
    case Op::fmadd_s:
    case Op::fmsub_s:
    case Op::fnmsub_s:
    case Op::fnmadd_s:
    case Op::fmadd_d:
    case Op::fmsub_d:
    case Op::fnmsub_d:
    case Op::fnmadd_d:
      return dyn && host_has_fma();
    case Op::fadd_s:
    case Op::fsub_s:
    case Op::fmul_s:
    case Op::fdiv_s:
    case Op::fsqrt_s:
    case Op::fadd_d:
    case Op::fsub_d:
    case Op::fmul_d:
    case Op::fdiv_d:
    case Op::fsqrt_d:
    case Op::fcvt_s_d:
    case Op::fcvt_s_w:
    case Op::fcvt_s_wu:
    case Op::fcvt_s_l:
    case Op::fcvt_d_l:
      return dyn;
    case Op::fcvt_d_w:
    case Op::fcvt_d_wu:
    case Op::fcvt_d_s:
      return dyn || d.rm <= 4;  // exact: any valid mode
    case Op::fcvt_w_s:
    case Op::fcvt_l_s:
    case Op::fcvt_w_d:
    case Op::fcvt_l_d:
      return dyn || d.rm == 1;
    default:
      return true;
  }
}

// Whether an instruction the JIT compiles reads or writes memory.
enum class Access { kNone, kLoad, kStore };
Access access_of(Op op) {
  if (op == Op::flw || op == Op::fld) return Access::kLoad;
  if (op == Op::fsw || op == Op::fsd) return Access::kStore;
  switch (isa::class_of(op)) {
    case Class::LD:
      return Access::kLoad;
    case Class::ST:
      return Access::kStore;
    default:
      return Access::kNone;
  }
}

Uses uses_of(const Decoded& d) {
  if (!takes(d)) return {false, false, false};
  switch (isa::class_of(d.op)) {
    case Class::RR:
      return {true, true, true};
    case Class::RI:
    case Class::R1:
      return {true, false, true};
    case Class::UP:
      return {false, false, true};
    case Class::LD:
      return {true, false, true};
    case Class::ST:
      return {true, true, false};
    case Class::BR:
      return {true, true, false};
    case Class::JAL:
      return {false, false, true};
    case Class::JALR:
      return {true, false, true};
    case Class::FP:
      return fp_int_uses(d.op);
    default:
      return {false, false, false};
  }
}

// Global registers: a5, a4, a3, a2 (the ones compilers reach for first) live in r12-r15
// in all compiled code, from the entry from the block loop to the return to it, through
// every chained jump: a chained exit neither stores them nor does its successor load
// them. Every return to the block loop stores them (any block of the chain may have
// written them). r12-r15 are callee-saved, so slow-path calls keep them.
constexpr unsigned kGlobalGuest[] = {15, 14, 13, 12};
constexpr Reg kGlobalHost[] = {R12, R13, R14, R15};
constexpr uint32_t kGlobalMask = 1u << 15 | 1u << 14 | 1u << 13 | 1u << 12;
// The other guest registers a block uses most get the rest, for the length of the block.
constexpr Reg kAllocOrder[] = {RSI, RDI, R8, R9, R10, R11};
constexpr Reg kCallerSaved[] = {RSI, RDI, R8, R9, R10, R11};

// Loads and stores keep the page their last access found in the TLB in a frame slot, so
// the next access to it checks one compare instead of the TLB lookup: those inside a
// native loop one slot each (while the slots last), and those off sp one for the stack
// (the frames of calls and returns). A slot holds what one TLB found (slots 0-3 the load
// TLB's pages, 4-7 the store TLB's), whichever access filled it, so any access of that
// kind may use it. The slots are set empty (a value no masked address equals: bit 11 set)
// at the entry from the block loop and live while compiled code runs, through chained
// exits: nothing that changes a translation (a trap, an SFENCE.VMA, a CSR write, a
// snapshot restore, the dirty log's handshake between slices, compiling code on a page)
// happens in compiled code.
constexpr unsigned kSiteSlots = 8;
constexpr unsigned kStoreSlot0 = 4;  // the store TLB's slots: 4-7
constexpr unsigned kStackSlot = 0;   // + kStoreSlot0 for stores: sp's page
constexpr int32_t kSiteEmpty = 0x800;
constexpr int32_t kFrameSize = 24 + 16 * kSiteSlots;  // 16-byte alignment for calls
static_assert((6 * 8 + 8 + kFrameSize) % 16 == 0);
constexpr int32_t site_offset(unsigned s) { return 24 + 16 * static_cast<int32_t>(s); }

// The return to the block loop: jit_loop_done, the ChainOut (which block, its bpc), the
// frame and the callee-saved registers; eax holds the exit code.
void emit_return(Emitter& a, const Layout& L) {
  a.store64(mem(RBP, L.loop_done), RBX);
  a.load64(RCX, mem(RSP, 16));
  a.load64(RDX, mem(RSP, 8));
  a.store64(mem(RCX, 0), RDX);
  a.load64(RDX, mem(RSP));
  a.store64(mem(RCX, 8), RDX);
  a.alu_imm(kAdd, RSP, kFrameSize);
  for (Reg r : {R15, R14, R13, R12, RBP, RBX}) a.pop(r);
  a.ret();
}

class Compiler {
 public:
  // `assume`: registers the code may take to be sign-extended 32-bit values from its
  // entry (never written in it); checked at the chain entry when `guard`, else only noted
  // (used_assumptions says which it relied on).
  Compiler(const Insn* insns, unsigned n, unsigned ninsns, const void* block, uint32_t page_offset,
           uint32_t nbytes, const Layout& l, const SlowPaths& s, uintptr_t base, Compiled& out,
           uint32_t assume = 0, bool guard = false)
      : base_(base),
        in_(insns),
        n_(n),
        ninsns_(ninsns),
        block_(block),
        page_offset_(page_offset),
        nbytes_(nbytes),
        L_(l),
        slow_(s),
        out_(out),
        assume_(assume & ~1u),
        guard_(guard) {
    a_.code().reserve(4096);
  }

  uint32_t used_assumptions() const { return used_; }

  std::vector<uint8_t>& compile() {
    allocate();
    prologue();
    for (unsigned i = 0; i < n_; i++) {
      if (!insn(i)) return a_.code();  // the instruction ended the compiled code
    }
    join(n_);
    // Ran off the end of the compiled prefix: the interpreter goes on at slot n_ (when
    // n_ == ninsns_, the block is done and next_pc already holds the fall-through, which
    // is chained).
    if (n_ == ninsns_) {
      chain_exit(kExitContinue, n_, n_, nbytes_, dirty());
    } else {
      exit_to(kExitContinue, n_, dirty());
    }
    emit_cold();
    return a_.code();
  }

 private:
  // ---- registers ----
  void allocate() {
    // Uses inside a native loop (up to the last branch back to the block's start) count
    // for every iteration: they weigh more than the ones after it.
    unsigned loop_end = 0;
    std::vector<bool> looped(n_);  // inside some native loop
    for (unsigned i = 0; i < n_; i++) {
      const Class c = isa::class_of(in_[i].d.op);
      if (c != Class::BR && c != Class::JAL) continue;
      const int64_t rel = in_[i].off + int64_t{in_[i].d.imm};
      const unsigned back = backward_target(i, rel);
      if (rel == 0 || back != 0) {
        loops_ = true;
        loop_end = i + 1;
        back_targets_ |= uint64_t{1} << back;
        for (unsigned k = back; k <= i; k++) looped[k] = true;
      }
    }
    sites_.assign(n_, -1);
    unsigned free[2] = {kStackSlot + 1, kStackSlot + 1};  // loads', stores' next free slot
    for (unsigned i = 0; i < n_; i++) {
      const Access a = access_of(in_[i].d.op);
      if (a == Access::kNone || (a == Access::kStore && L_.log_stores)) continue;
      const unsigned kind = a == Access::kStore ? 1 : 0;
      const unsigned base = kind == 1 ? kStoreSlot0 : 0;
      if (in_[i].d.rs1 == 2) {
        sites_[i] = static_cast<int8_t>(base + kStackSlot);
      } else if (looped[i] && free[kind] < kStoreSlot0) {
        sites_[i] = static_cast<int8_t>(base + free[kind]++);
      }
    }
    unsigned count[32] = {};
    for (unsigned i = 0; i < n_; i++) {
      const Decoded& d = in_[i].d;
      const Uses u = uses_of(d);
      const unsigned w = i < loop_end ? 8 : 1;
      if (u.rs1) count[d.rs1] += w;
      if (u.rs2) count[d.rs2] += w;
      if (u.rd) {
        count[d.rd] += w;
        written_mask_ |= 1u << d.rd;
      }
      if (isa::class_of(d.op) == Class::FP) has_fp_ = true;
    }
    count[0] = 0;
    written_mask_ &= ~1u;
    unsigned order[32];
    for (unsigned r = 0; r < 32; r++) order[r] = r;
    std::stable_sort(order, order + 32,
                     [&](unsigned a, unsigned b) { return count[a] > count[b]; });
    std::fill(std::begin(host_), std::end(host_), -1);
    for (unsigned g = 0; g < std::size(kGlobalGuest); g++) host_[kGlobalGuest[g]] = kGlobalHost[g];
    unsigned next = 0;
    for (unsigned k = 0; k < 32 && next < std::size(kAllocOrder); k++) {
      const unsigned r = order[k];
      if (count[r] == 0) break;
      if (global(r)) continue;
      host_[r] = kAllocOrder[next++];
    }
    for (Reg c : kCallerSaved) {
      for (unsigned r = 1; r < 32; r++) {
        if (host_[r] == c) saved_.push_back(c);
      }
    }
  }

  bool allocated(unsigned r) const { return host_[r] >= 0; }
  static bool global(unsigned r) { return (kGlobalMask >> r & 1) != 0; }
  Reg host(unsigned r) const { return static_cast<Reg>(host_[r]); }
  Mem xmem(unsigned r) const { return mem(RBP, L_.x + 8 * static_cast<int32_t>(r)); }

  // A host register holding guest register r: its own, or `scratch` loaded with it.
  Reg src(unsigned r, Reg scratch) {
    if (r == 0) {
      a_.mov_imm(scratch, 0);
      return scratch;
    }
    if (allocated(r)) return host(r);
    a_.load64(scratch, xmem(r));
    return scratch;
  }
  // Where to compute a result for rd: its host register unless that is `avoid` (an
  // operand still needed), else rax.
  Reg target(unsigned rd, Reg avoid = RSP) const {
    if (rd != 0 && allocated(rd) && host(rd) != avoid) return host(rd);
    return RAX;
  }
  // Makes `v` guest register rd's value.
  void commit(unsigned rd, Reg v) {
    if (rd == 0) return;
    know(rd, {});
    if (allocated(rd)) {
      a_.mov(host(rd), v);
      dirty_ |= 1u << rd;
    } else {
      a_.store64(xmem(rd), v);
    }
  }
  // Stores the allocated registers in `dirty` (bit r: guest register r) to the hart.
  // Stores the block's own allocated registers in `dirty` to the hart (the global ones stay
  // in their host registers through chained exits: exit_to stores them).
  void write_back(uint32_t dirty) {
    for (unsigned r = 1; r < 32; r++) {
      if (allocated(r) && !global(r) && (dirty >> r & 1) != 0) a_.store64(xmem(r), host(r));
    }
  }
  void write_back_globals() {
    for (unsigned g = 0; g < std::size(kGlobalGuest); g++)
      a_.store64(xmem(kGlobalGuest[g]), kGlobalHost[g]);
  }
  // The allocated registers that may differ from the hart's copy here: those written so
  // far, or all that the block writes once a native loop may have run.
  uint32_t dirty() const { return loops_ ? written_mask_ : dirty_; }

  // ---- what is known of the values on the straight-line path ----
  // sx: the value is its low 32 bits sign-extended (what every *W instruction leaves);
  // nn: it is below 2^31 (so sx too). `dep`: the entry assumptions it rests on.
  struct Fact {
    bool sx = false, nn = false;
    uint32_t dep = 0;
  };
  Fact fact(unsigned r) const {
    return {(sx_ >> r & 1) != 0, (nn_ >> r & 1) != 0, r == 0 ? 0 : dep_[r]};
  }
  static Fact sext_fact() { return {true, false, 0}; }
  static Fact small_fact() { return {true, true, 0}; }
  void know(unsigned rd, Fact f) {
    if (rd == 0) return;
    const uint32_t b = 1u << rd;
    sx_ = f.sx || f.nn ? sx_ | b : sx_ & ~b;
    nn_ = f.nn ? nn_ | b : nn_ & ~b;
    dep_[rd] = f.sx || f.nn ? f.dep : 0;
  }
  // Code left out because r's fact holds: the assumptions under it are needed.
  void rely(unsigned r) { used_ |= fact(r).dep; }
  // a & b: below 2^31 if either is; sign-extended if both are. a | b, a ^ b: either if both.
  static Fact and_fact(Fact a, Fact b) {
    if (a.nn && (!b.nn || a.dep == 0)) return {true, true, a.dep};
    if (b.nn) return {true, true, b.dep};
    return {a.sx && b.sx, false, a.dep | b.dep};
  }
  static Fact or_fact(Fact a, Fact b) { return {a.sx && b.sx, a.nn && b.nn, a.dep | b.dep}; }

  // ---- structure ----
  void prologue() {
    for (Reg r : {RBX, RBP, R12, R13, R14, R15}) a_.push(r);
    a_.alu_imm(kSub, RSP, kFrameSize);  // the frame (see the top)
    a_.mov(RBP, RDI);
    a_.store64(mem(RSP), RSI);
    a_.store64(mem(RSP, 16), RDX);
    a_.mov_imm(RBX, 0);
    for (unsigned g = 0; g < std::size(kGlobalGuest); g++)
      a_.load64(kGlobalHost[g], xmem(kGlobalGuest[g]));
    for (unsigned k = 0; k < kSiteSlots; k++) a_.store64_imm(mem(RSP, site_offset(k)), kSiteEmpty);
    // Chained exits of other blocks come in here, with the frame set up, bpc updated and
    // the global registers live.
    out_.chain_entry = static_cast<uint32_t>(a_.size());
    a_.mov_imm64(RAX, reinterpret_cast<uint64_t>(block_));
    a_.store64(mem(RSP, 8), RAX);
    if (n_ < ninsns_ || has_fp_) {
      // The interpreter finishes this block (after its compiled prefix, or from an F/D
      // instruction it hands back) and expects next_pc to hold the fall-through (the
      // block loop sets it when it enters a block; a chained exit does not).
      guest_pc(RAX, nbytes_);
      a_.store64(mem(RBP, L_.next_pc), RAX);
    }
    if (has_fp_) fp_setup();
    for (unsigned r = 1; r < 32; r++) {
      if (allocated(r) && !global(r)) a_.load64(host(r), xmem(r));
    }
    if (guard_ && assume_ != 0) entry_guards();
    a_.bind(loop_top_);
    entry_facts();
  }

  // What is known where native loops come back: what holds from the entry on holds at
  // every pass, as the assumed registers are never written.
  void entry_facts() {
    sx_ = 1u | assume_;
    nn_ = 1u;
    for (unsigned r = 1; r < 32; r++) dep_[r] = (assume_ >> r & 1) != 0 ? 1u << r : 0;
  }

  // The assumptions, checked: a register that is not its low half sign-extended sends the
  // whole block to the interpreter.
  void entry_guards() {
    Label& fail = new_label();
    for (unsigned r = 1; r < 32; r++) {
      if ((assume_ >> r & 1) == 0) continue;
      const Reg v = src(r, RCX);
      a_.movsxd(RAX, v);
      a_.alu(kCmp, RAX, v);
      a_.jcc(kNE, fail);
    }
    cold([this, &fail] {
      a_.bind(fail);
      exit_to(kExitGuard, 0, 0);
    });
  }

  // A block with F/D instructions: unless this run of compiled code has done it already
  // (fp_live), checks that FP instructions are enabled (mstatus.FS) and that frm is a mode
  // the host has (RNE, RTZ, RDN, RUP; else the interpreter runs the block, and traps or
  // rounds to nearest-max-magnitude there), then loads the guest's mode into MXCSR with
  // the flags clear. The block loop folds the flags into fflags when the run returns.
  void fp_setup() {
    Label& ready = new_label();
    Label& interpret = new_label();
    a_.alu_mem_imm32(false, kCmp, mem(RBP, L_.fp_live), 0);
    a_.jcc(kNE, ready);
    a_.test_mem8_imm(mem(RBP, L_.mstatus + 1), 0x60);  // FS, mstatus bits 13-14
    a_.jcc(kE, interpret);
    a_.alu_mem_imm32(false, kCmp, mem(RBP, L_.frm), 3);
    a_.jcc(kA, interpret);
    // MXCSR.RC (bits 13-14) for frm 0..3 (RNE, RTZ, RDN, RUP): 00, 11, 01, 10, packed in
    // two bits each into 0x9C.
    a_.load(RCX, mem(RBP, L_.frm), 4, false);
    a_.alu32(kAdd, RCX, RCX);
    a_.mov_imm(RDX, 0x9C);
    a_.shift32_cl(kShr, RDX);
    a_.alu32_imm(kAnd, RDX, 3);
    a_.shift32_imm(kShl, RDX, 13);
    a_.alu32_imm(kOr, RDX, 0x1f80);  // every exception masked, flags clear
    a_.store(mem(RBP, L_.mxcsr), RDX, 4);
    a_.ldmxcsr(mem(RBP, L_.mxcsr));
    a_.alu_mem_imm32(false, kOr, mem(RBP, L_.fp_live), 1);
    a_.bind(ready);
    cold([this, &interpret] {
      a_.bind(interpret);
      exit_to(kExitContinue, 0, 0);
    });
  }

  // Leaves compiled code: registers back to the hart, the exit code in eax.
  void exit_to(ExitKind kind, unsigned slot, uint32_t dirty) {
    write_back(dirty);
    a_.mov_imm(RAX, (static_cast<uint32_t>(kind) << 16) | slot);
    if (L_.shared.exit != 0) {
      a_.jmp_abs(L_.shared.exit, base_);  // stores the globals, returns
    } else {
      write_back_globals();
      a_.jmp(epilogue_);
    }
  }
  // next_pc = bpc + rel, then exit.
  void exit_with_next_pc(ExitKind kind, unsigned slot, int64_t rel, uint32_t dirty) {
    a_.load64(RAX, mem(RSP));
    add_imm64(RAX, rel);
    a_.store64(mem(RBP, L_.next_pc), RAX);
    exit_to(kind, slot, dirty);
  }

  // An exit to bpc + rel, whose instructions up to it have retired `retired` of the
  // block's: a stub that link_exit can point at the successor's chain entry (see
  // compiler.h for what it checks), then the plain exit for when it is not linked or its
  // checks fail.
  void chain_exit(ExitKind kind, unsigned slot, unsigned retired, int64_t rel, uint32_t dirty) {
    const int64_t target = int64_t{page_offset_} + rel;
    if (rel == 0 || rel < INT32_MIN / 2 || rel > INT32_MAX / 2 ||
        out_.nsites == std::size(out_.sites)) {
      exit_with_next_pc(kind, slot, rel, dirty);
      return;
    }
    write_back(dirty);
    Label& slow = new_label();
    if (target < 0 || target >= 4096) {
      // Another page: the fetch TLB must map the target where the successor was found.
      guest_pc(RAX, rel);
      successor_key_check(RAX, RDX, RCX, slow);
    }
    chain_stub(slot, retired, rel, false, slow);
    a_.bind(slow);
    exit_with_next_pc(kind, slot, rel, 0);
  }

  // Jumps to `slow` unless the fetch TLB maps the guest address in `va` (kept) to the
  // successor's host address, patched into the mov_imm64 here (kStubKey); to `other`
  // instead (if given) when it maps it elsewhere, with that host address in a. Clobbers
  // a, b.
  void successor_key_check(Reg va, Reg a, Reg b, Label& slow, Label* other = nullptr) {
    a_.mov(b, va);
    a_.shift_imm(kShr, b, 12);
    a_.mov(a, b);
    a_.alu_mem(kOr, a, mem(RBP, L_.fetch_ctx));
    tlb_slot_offset(b);
    a_.alu_mem(kCmp, a, mem_idx(RBP, b, L_.tlb_fetch));
    a_.jcc(kNE, slow);
    a_.mov(a, va);
    a_.alu_mem(kAdd, a, mem_idx(RBP, b, L_.tlb_fetch + 8));
    a_.mov_imm64(b, 0);  // the successor's host address
    a_.alu(kCmp, a, b);
    a_.jcc(kNE, other != nullptr ? *other : slow);
  }

  // The patchable part of a chainable exit (kStub* give its layout): the budget and epoch
  // checks, then the frame's bpc becomes the successor's (bpc + rel, or the target in rdx
  // after a JALR) and the jump, to `slow` until linked.
  void chain_stub(unsigned slot, unsigned retired, int64_t rel, bool jalr, Label& slow) {
    const size_t stub = a_.size();
    a_.lea(RAX, mem_wide(RBX, kUnlinked));
    a_.alu_mem(kCmp, RAX, mem_wide(RBP, L_.loop_limit));
    a_.jcc(kA, slow);
    a_.mov_imm64(RCX, reinterpret_cast<uint64_t>(&g_chain_epoch));
    a_.alu_mem_imm32(false, kCmp, mem(RCX), 0);  // the low half of the epoch
    a_.jcc(kNE, slow);
    a_.lea(RBX, mem_wide(RBX, static_cast<int32_t>(retired)));
    if (jalr) {
      a_.store64(mem(RSP), RDX);
      a_.nop4();  // (the same length as the add below)
    } else {
      a_.alu_mem_imm32(true, kAdd, mem(RSP), static_cast<int32_t>(rel));
    }
    a_.jmp(slow);
    if (a_.size() != stub + kStubEnd) std::abort();  // the layout link_exit patches
    if (stub <= UINT16_MAX) {
      out_.sites[out_.nsites++] =
          ChainSite{static_cast<uint16_t>(slot), static_cast<uint32_t>(stub)};
    }
  }

  // The exit of a block ending with JALR (next_pc set): chainable like chain_exit's, to
  // the last successor it was linked to (checked through the fetch TLB, in any page).
  void jalr_chain_exit(uint32_t dirty) {
    if (out_.nsites == std::size(out_.sites)) {
      exit_to(kExitContinue, ninsns_, dirty);
      return;
    }
    write_back(dirty);
    Label& slow = new_label();
    Label& other = new_label();
    a_.load64(RDX, mem(RBP, L_.next_pc));  // the target
    successor_key_check(RDX, RAX, RCX, slow, &other);
    chain_stub(ninsns_, ninsns_, 0, true, slow);
    if (L_.shared.probe != 0) {
      // Another target than the linked one: the table probe, then an indirect jump of this
      // exit's own (so the host predicts each guest JALR's targets apart).
      Label& probed = new_label();
      Label& none = new_label();
      a_.bind(other);
      a_.mov_imm(R11, ninsns_);
      a_.call_abs(L_.shared.probe_host, base_);
      a_.jmp(probed);
      a_.bind(slow);
      a_.mov_imm(R11, ninsns_);
      a_.call_abs(L_.shared.probe, base_);
      a_.bind(probed);
      a_.test(R9, R9);
      a_.jcc(kE, none);
      a_.jmp_reg(R9);
      a_.bind(none);
    } else {
      a_.bind(other);
      a_.bind(slow);
    }
    exit_to(kExitContinue, ninsns_, 0);
  }

  // rcx = the byte offset of the TLB entry for virtual page number rcx (Hart::tlb_slot).
  void tlb_slot_offset(Reg r) {
    a_.alu_mem(kXor, r, mem(RBP, L_.tlb_salt));
    a_.alu32_imm(kAnd, r, static_cast<int32_t>(kTlbSize - 1));
    a_.shift32_imm(kShl, r, 4);
  }
  void add_imm64(Reg r, int64_t v) {
    if (v == 0) return;
    if (v >= INT32_MIN && v <= INT32_MAX) {
      a_.alu_imm(kAdd, r, static_cast<int32_t>(v));
    } else {
      a_.mov_imm(RDX, static_cast<uint64_t>(v));
      a_.alu(kAdd, r, RDX);
    }
  }
  // bpc + rel into r.
  void guest_pc(Reg r, int64_t rel) {
    a_.load64(r, mem(RSP));
    add_imm64(r, rel);
  }

  Label& new_label() { return labels_.emplace_back(); }
  void cold(std::function<void()> f) { cold_.push_back(std::move(f)); }

  void emit_cold() {
    // Cold code may add more cold code (it does not today, but keep the loop general).
    for (size_t i = 0; i < cold_.size(); i++) cold_[i]();
    if (L_.shared.exit != 0) return;  // the arena's shared return path
    a_.bind(epilogue_);
    emit_return(a_, L_);
  }

  // A native loop back to the block's start after `retired` instructions of this
  // iteration, while the budget lasts (the block, run again whole, must fit in it as a
  // chained successor would); otherwise `otherwise`.
  void loop_back(unsigned retired, Label& otherwise) {
    a_.lea(RAX, mem(RBX, static_cast<int32_t>(retired + ninsns_)));
    a_.alu_mem(kCmp, RAX, mem(RBP, L_.loop_limit));
    a_.jcc(kA, otherwise);
    a_.lea(RBX, mem(RBX, static_cast<int32_t>(retired)));
    a_.jmp(loop_top_);
  }
  // The same from the jump at i back to instruction t (after the first) of this block:
  // exits count their slot as retired, so this pass's i + 1 become i + 1 - t.
  void loop_to(unsigned i, unsigned t, Label& otherwise) {
    const int32_t adj = static_cast<int32_t>(i + 1) - static_cast<int32_t>(t);
    a_.lea(RAX, mem(RBX, adj + static_cast<int32_t>(ninsns_)));
    a_.alu_mem(kCmp, RAX, mem(RBP, L_.loop_limit));
    a_.jcc(kA, otherwise);
    a_.lea(RBX, mem(RBX, adj));
    a_.jmp(back_label(t));
  }
  Label& back_label(unsigned t) {
    if (back_labels_.size() <= t) back_labels_.resize(t + 1, nullptr);
    if (back_labels_[t] == nullptr) back_labels_[t] = &new_label();
    return *back_labels_[t];
  }
  // The instruction after the first that a jump from i to block offset `rel` lands on
  // when that is this one or an earlier one (the first: loop_back), else 0.
  unsigned backward_target(unsigned i, int64_t rel) const {
    if (rel <= 0 || rel > in_[i].off) return 0;
    for (unsigned t = 1; t <= i && t < 64; t++) {  // (back_targets_ has 64 bits)
      if (in_[t].off == rel) return t;
      if (in_[t].off > rel) return 0;
    }
    return 0;
  }

  // Calls a slow path with the caller-saved guest registers preserved; `args` loads the
  // argument registers (rdi = hart is set here) given the stack depth it runs at.
  void call_slow(const void* fn, const std::function<void(int32_t bpc_at)>& args) {
    for (Reg r : saved_) a_.push(r);
    const bool pad = saved_.size() % 2 != 0;
    if (pad) a_.alu_imm(kSub, RSP, 8);
    const int32_t depth = 8 * static_cast<int32_t>(saved_.size() + (pad ? 1 : 0));
    args(depth);
    a_.mov(RDI, RBP);
    a_.call(fn);
    if (pad) a_.alu_imm(kAdd, RSP, 8);
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) a_.pop(*it);
  }

  // ---- instructions ----
  // Emits instruction i; false when compilation stops there.
  bool insn(unsigned i) {
    join(i);
    if (i != 0 && (back_targets_ >> i & 1) != 0) {
      // Jumps back here from further on: only what holds on every pass is known.
      a_.bind(back_label(i));
      entry_facts();
      fs_marked_ = false;
    }
    const Decoded& d = in_[i].d;
    if (!emit(i, d)) {  // not compiled: the interpreter goes on from this instruction
      exit_to(kExitContinue, i, dirty());
      emit_cold();
      return false;
    }
    return !isa::ends_block(d.op);  // a jump's emitter has made the block's last exit
  }

  // Runs the emitter of every row whose jit column says yes: EMIT(name) below must exist
  // for each of them, or this does not compile. An instruction that only writes x[rd]
  // needs no code when rd is x0.
  bool emit(unsigned i, const Decoded& d) {
    if (!takes(d)) return false;
    switch (d.op) {
#define JIT_yes(name)                                                   \
  case Op::name:                                                        \
    if (!isa::writes_only_rd(Op::name) || d.rd != 0) emit_##name(i, d); \
    return true;
#define JIT_no(name)
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) JIT_##jit(name)
#include "cpu/isa/instructions.inc"
#undef JIT_yes
#undef JIT_no
      default:
        return false;
    }
  }

  // One emitter per compiled instruction: i is its index in the block, d its fields.
#define EMIT(name) void emit_##name([[maybe_unused]] unsigned i, [[maybe_unused]] const Decoded& d)

  // ---- RV64I ----
  EMIT(lui) {
    const Reg D = target(d.rd);
    a_.mov_imm(D, static_cast<uint64_t>(int64_t{d.imm}));
    commit(d.rd, D);
    know(d.rd, d.imm >= 0 ? small_fact() : sext_fact());
  }
  EMIT(auipc) {
    const Reg D = target(d.rd);
    guest_pc(D, in_[i].off + int64_t{d.imm});
    commit(d.rd, D);
  }
  EMIT(jal) {
    const Insn& in = in_[i];
    const int64_t imm = d.imm;
    if (d.rd != 0) {
      const Reg D = target(d.rd);
      guest_pc(D, in.off + d.len);
      commit(d.rd, D);
    }
    if (in.off + imm == 0) {
      Label& out = new_label();
      loop_back(ninsns_, out);
      a_.bind(out);
    } else if (const unsigned t = backward_target(i, in.off + imm); t != 0) {
      Label& out = new_label();
      loop_to(i, t, out);
      a_.bind(out);
    }
    chain_exit(kExitContinue, ninsns_, ninsns_, in.off + imm, dirty());
    emit_cold();
  }
  EMIT(jalr) {
    const Reg A = src(d.rs1, RAX);
    a_.mov(RAX, A);
    add_imm64(RAX, d.imm);
    a_.alu_imm(kAnd, RAX, -2);
    a_.store64(mem(RBP, L_.next_pc), RAX);
    if (d.rd != 0) {
      const Reg D = target(d.rd);
      guest_pc(D, in_[i].off + d.len);
      commit(d.rd, D);
    }
    jalr_chain_exit(dirty());
    emit_cold();
  }
  EMIT(beq) { branch(i, d, kE); }
  EMIT(bne) { branch(i, d, kNE); }
  EMIT(blt) { branch(i, d, kL); }
  EMIT(bge) { branch(i, d, kGE); }
  EMIT(bltu) { branch(i, d, kB); }
  EMIT(bgeu) { branch(i, d, kAE); }
  EMIT(lb) { load(i, d, 1, true); }
  EMIT(lh) { load(i, d, 2, true); }
  EMIT(lw) { load(i, d, 4, true); }
  EMIT(ld) { load(i, d, 8, false); }
  EMIT(lbu) { load(i, d, 1, false); }
  EMIT(lhu) { load(i, d, 2, false); }
  EMIT(lwu) { load(i, d, 4, false); }
  EMIT(sb) { store(i, d, 1); }
  EMIT(sh) { store(i, d, 2); }
  EMIT(sw) { store(i, d, 4); }
  EMIT(sd) { store(i, d, 8); }
  EMIT(addi) { alu_imm(d, kAdd, false); }
  EMIT(slti) { set_less_imm(d, kL); }
  EMIT(sltiu) { set_less_imm(d, kB); }
  EMIT(xori) { alu_imm(d, kXor, false); }
  EMIT(ori) { alu_imm(d, kOr, false); }
  EMIT(andi) { alu_imm(d, kAnd, false); }
  EMIT(slli) { shift_by_imm(d, kShl, false); }
  EMIT(srli) { shift_by_imm(d, kShr, false); }
  EMIT(srai) { shift_by_imm(d, kSar, false); }
  EMIT(add) { binop(d, kAdd, false); }
  EMIT(sub) { binop(d, kSub, false); }
  EMIT(sll) { shift_reg(d, kShl, false); }
  EMIT(slt) { set_less(d, kL); }
  EMIT(sltu) { set_less(d, kB); }
  EMIT(xor_) { binop(d, kXor, false); }
  EMIT(srl) { shift_reg(d, kShr, false); }
  EMIT(sra) { shift_reg(d, kSar, false); }
  EMIT(or_) { binop(d, kOr, false); }
  EMIT(and_) { binop(d, kAnd, false); }
  EMIT(addiw) { alu_imm(d, kAdd, true); }
  EMIT(slliw) { shift_by_imm(d, kShl, true); }
  EMIT(srliw) { shift_by_imm(d, kShr, true); }
  EMIT(sraiw) { shift_by_imm(d, kSar, true); }
  EMIT(addw) { binop(d, kAdd, true); }
  EMIT(subw) { binop(d, kSub, true); }
  EMIT(sllw) { shift_reg(d, kShl, true); }
  EMIT(srlw) { shift_reg(d, kShr, true); }
  EMIT(sraw) { shift_reg(d, kSar, true); }
  EMIT(fence) {}  // every host access is already ordered for the guest

  // ---- M ----
  EMIT(mul) { multiply(d, false); }
  EMIT(mulw) {
    multiply(d, true);
    know(d.rd, sext_fact());
  }
  EMIT(mulh) { multiply_high(d, true, true); }
  EMIT(mulhsu) { multiply_high(d, true, false); }
  EMIT(mulhu) { multiply_high(d, false, false); }
  EMIT(div) { divide(d, false, true, false); }
  EMIT(divu) { divide(d, false, false, false); }
  EMIT(rem) { divide(d, false, true, true); }
  EMIT(remu) { divide(d, false, false, true); }
  EMIT(divw) { divide(d, true, true, false); }
  EMIT(divuw) { divide(d, true, false, false); }
  EMIT(remw) { divide(d, true, true, true); }
  EMIT(remuw) { divide(d, true, false, true); }

  // ---- Zba ----
  EMIT(add_uw) { add_scaled(d, 1, true); }
  EMIT(sh1add) { add_scaled(d, 2, false); }
  EMIT(sh2add) { add_scaled(d, 4, false); }
  EMIT(sh3add) { add_scaled(d, 8, false); }
  EMIT(sh1add_uw) { add_scaled(d, 2, true); }
  EMIT(sh2add_uw) { add_scaled(d, 4, true); }
  EMIT(sh3add_uw) { add_scaled(d, 8, true); }
  EMIT(slli_uw) {
    const Reg D = target(d.rd);
    a_.mov32(D, src(d.rs1, D));
    a_.shift_imm(kShl, D, static_cast<unsigned>(d.imm) & 63);
    commit(d.rd, D);
  }

  // ---- Zbb ----
  EMIT(andn) { alu_not(d, kAnd); }
  EMIT(orn) { alu_not(d, kOr); }
  EMIT(xnor) { alu_not(d, kXor); }
  EMIT(max) { minmax(d, kL); }
  EMIT(min) { minmax(d, kG); }
  EMIT(maxu) { minmax(d, kB); }
  EMIT(minu) { minmax(d, kA); }
  EMIT(rol) { shift_reg(d, kRol, false); }
  EMIT(ror) { shift_reg(d, kRor, false); }
  EMIT(rolw) { shift_reg(d, kRol, true); }
  EMIT(rorw) { shift_reg(d, kRor, true); }
  EMIT(rori) { shift_by_imm(d, kRor, false); }
  EMIT(roriw) { shift_by_imm(d, kRor, true); }
  EMIT(sext_b) {
    unary(d, [this](Reg D, Reg A) { a_.movsx8(D, A); });
    know(d.rd, sext_fact());
  }
  EMIT(sext_h) {
    unary(d, [this](Reg D, Reg A) { a_.movsx16(D, A); });
    know(d.rd, sext_fact());
  }
  EMIT(zext_h) {
    unary(d, [this](Reg D, Reg A) { a_.movzx16(D, A); });
    know(d.rd, small_fact());
  }
  EMIT(rev8) {
    unary(d, [this](Reg D, Reg A) {
      a_.mov(D, A);
      a_.bswap(D);
    });
  }

  // ---- F and D ----
  // Arithmetic runs on the host's SSE/FMA3 unit in the guest's rounding mode (fp_setup),
  // whose flags accrue in MXCSR. Where the host's answer could differ from RISC-V's
  // (a NaN result, whose payload RISC-V makes canonical; an operand single not NaN-boxed;
  // an out-of-range conversion to an integer), the instruction's result is not written
  // and the interpreter runs it again from there: the flags the host raised for it are
  // then a subset of the ones the interpreter raises.
  EMIT(flw) { load(i, d, 4, false, true); }
  EMIT(fld) { load(i, d, 8, false, true); }
  EMIT(fsw) { store(i, d, 4, true); }
  EMIT(fsd) { store(i, d, 8, true); }
  EMIT(fadd_s) { farith(i, d, 0x58, false); }
  EMIT(fsub_s) { farith(i, d, 0x5C, false); }
  EMIT(fmul_s) { farith(i, d, 0x59, false); }
  EMIT(fdiv_s) { farith(i, d, 0x5E, false); }
  EMIT(fsqrt_s) { farith(i, d, 0x51, false, true); }
  EMIT(fadd_d) { farith(i, d, 0x58, true); }
  EMIT(fsub_d) { farith(i, d, 0x5C, true); }
  EMIT(fmul_d) { farith(i, d, 0x59, true); }
  EMIT(fdiv_d) { farith(i, d, 0x5E, true); }
  EMIT(fsqrt_d) { farith(i, d, 0x51, true, true); }
  // a*b+c, a*b-c, -(a*b)+c, -(a*b)-c: vfmadd, vfmsub, vfnmadd, vfnmsub (231 forms).
  EMIT(fmadd_s) { ffma(i, d, 0xB9, false); }
  EMIT(fmsub_s) { ffma(i, d, 0xBB, false); }
  EMIT(fnmsub_s) { ffma(i, d, 0xBD, false); }
  EMIT(fnmadd_s) { ffma(i, d, 0xBF, false); }
  EMIT(fmadd_d) { ffma(i, d, 0xB9, true); }
  EMIT(fmsub_d) { ffma(i, d, 0xBB, true); }
  EMIT(fnmsub_d) { ffma(i, d, 0xBD, true); }
  EMIT(fnmadd_d) { ffma(i, d, 0xBF, true); }
  EMIT(fsgnj_s) { fsgnj(i, d, 0, false); }
  EMIT(fsgnjn_s) { fsgnj(i, d, 1, false); }
  EMIT(fsgnjx_s) { fsgnj(i, d, 2, false); }
  EMIT(fsgnj_d) { fsgnj(i, d, 0, true); }
  EMIT(fsgnjn_d) { fsgnj(i, d, 1, true); }
  EMIT(fsgnjx_d) { fsgnj(i, d, 2, true); }
  EMIT(feq_s) { fcmp(i, d, 0, false); }
  EMIT(flt_s) { fcmp(i, d, 1, false); }
  EMIT(fle_s) { fcmp(i, d, 2, false); }
  EMIT(feq_d) { fcmp(i, d, 0, true); }
  EMIT(flt_d) { fcmp(i, d, 1, true); }
  EMIT(fle_d) { fcmp(i, d, 2, true); }
  EMIT(fmv_x_w) {
    const Reg D = target(d.rd);
    a_.load(D, fm(d.rs1), 4, true);
    commit(d.rd, D);
    know(d.rd, sext_fact());
  }
  EMIT(fmv_x_d) {
    const Reg D = target(d.rd);
    a_.load64(D, fm(d.rs1));
    commit(d.rd, D);
  }
  EMIT(fmv_w_x) { fp_write_bits(d.rd, src(d.rs1, RAX), false); }
  EMIT(fmv_d_x) { fp_write_bits(d.rd, src(d.rs1, RAX), true); }
  EMIT(fcvt_d_w) { int_to_fp(d, true, false, false); }
  EMIT(fcvt_d_wu) { int_to_fp(d, true, false, true); }
  EMIT(fcvt_d_l) { int_to_fp(d, true, true, false); }
  EMIT(fcvt_s_w) { int_to_fp(d, false, false, false); }
  EMIT(fcvt_s_wu) { int_to_fp(d, false, false, true); }
  EMIT(fcvt_s_l) { int_to_fp(d, false, true, false); }
  EMIT(fcvt_w_d) { fp_to_int(i, d, true, false); }
  EMIT(fcvt_l_d) { fp_to_int(i, d, true, true); }
  EMIT(fcvt_w_s) { fp_to_int(i, d, false, false); }
  EMIT(fcvt_l_s) { fp_to_int(i, d, false, true); }
  EMIT(fcvt_d_s) {
    box_check(i, d.rs1);
    a_.cvtf2f(true, X0, fm(d.rs1));
    fp_result(i, d.rd, true, X0);
  }
  EMIT(fcvt_s_d) {
    a_.cvtf2f(false, X0, fm(d.rs1));
    fp_result(i, d.rd, false, X0);
  }
#undef EMIT

  // ---- F and D templates ----
  static constexpr Reg X0 = RAX, X1 = RCX;  // xmm0, xmm1 (numbered like rax, rcx)

  Mem fm(unsigned r, int32_t extra = 0) const {
    return mem(RBP, L_.f + 8 * static_cast<int32_t>(r) + extra);
  }
  // A cold exit to the interpreter at instruction i (which it then runs).
  Label& interpret_at(unsigned i) {
    Label& l = new_label();
    const uint32_t dirty_here = dirty();
    cold([this, &l, i, dirty_here] {
      a_.bind(l);
      exit_to(kExitContinue, i, dirty_here);
    });
    return l;
  }
  // A single operand must be NaN-boxed (else it reads as the canonical NaN: the
  // interpreter's business).
  void box_check(unsigned i, unsigned r) {
    a_.alu_mem_imm32(false, kCmp, fm(r, 4), -1);
    a_.jcc(kNE, interpret_at(i));
  }
  // mstatus.FS = Dirty (and SD), before the first write of an f register on the block's
  // straight-line path (everything after it on that path finds it done).
  void mark_fs_dirty() {
    a_.alu_mem_imm32(false, kOr, mem(RBP, L_.mstatus), 0x6000);
    a_.alu_mem_imm32(false, kOr, mem(RBP, L_.mstatus + 4), INT32_MIN);  // SD, bit 63
  }
  void mark_fs_once() {
    if (!fs_marked_) mark_fs_dirty();
    fs_marked_ = true;
  }
  // f[rd] = the bits in general register v: a double, or a single (NaN-boxed).
  void fp_write_bits(unsigned rd, Reg v, bool dbl) {
    mark_fs_once();
    if (dbl) {
      a_.store64(fm(rd), v);
    } else {
      a_.store(fm(rd), v, 4);
      a_.alu_mem_imm32(false, kOr, fm(rd, 4), -1);
    }
  }
  // f[rd] = xmm register x, unless it is a NaN (then the interpreter runs instruction i).
  void fp_result(unsigned i, unsigned rd, bool dbl, Reg x) {
    a_.ucomis(dbl, x, x);
    a_.jcc(kP, interpret_at(i));
    fp_store(rd, dbl, x);
  }
  // f[rd] = xmm register x (a single NaN-boxed).
  void fp_store(unsigned rd, bool dbl, Reg x) {
    mark_fs_once();
    if (dbl) {
      a_.movsd_store(fm(rd), x);
    } else {
      a_.movss_store(fm(rd), x);
      a_.alu_mem_imm32(false, kOr, fm(rd, 4), -1);
    }
  }
  void fload(Reg x, unsigned r, bool dbl) {
    if (dbl) {
      a_.movsd_load(x, fm(r));
    } else {
      a_.movss_load(x, fm(r));
    }
  }
  // rd = rs1 op rs2 (or op rs1 when unary: sqrt).
  void farith(unsigned i, const Decoded& d, uint8_t opcode, bool dbl, bool unary = false) {
    if (!dbl) {
      box_check(i, d.rs1);
      if (!unary) box_check(i, d.rs2);
    }
    if (unary) {
      a_.sse_arith(opcode, dbl, X0, fm(d.rs1));
    } else {
      fload(X0, d.rs1, dbl);
      a_.sse_arith(opcode, dbl, X0, fm(d.rs2));
    }
    fp_result(i, d.rd, dbl, X0);
  }
  void ffma(unsigned i, const Decoded& d, uint8_t opcode, bool dbl) {
    if (!dbl) {
      box_check(i, d.rs1);
      box_check(i, d.rs2);
      box_check(i, d.rs3);
    }
    fload(X1, d.rs3, dbl);
    fload(X0, d.rs1, dbl);
    a_.vfma231(opcode, dbl, X1, X0, fm(d.rs2));
    fp_result(i, d.rd, dbl, X1);
  }
  // kind 0: fsgnj (rs2's sign), 1: fsgnjn (its opposite), 2: fsgnjx (the two xored).
  void fsgnj(unsigned i, const Decoded& d, int kind, bool dbl) {
    if (!dbl) {
      box_check(i, d.rs1);
      box_check(i, d.rs2);
    }
    const unsigned bits = dbl ? 64 : 32;
    a_.load(RAX, fm(d.rs1), bits / 8, false);
    a_.load(RCX, fm(d.rs2), bits / 8, false);
    if (kind == 2) a_.alu(kXor, RCX, RAX);
    if (kind == 1) a_.not_(RCX);
    if (dbl) {
      a_.shift_imm(kShl, RAX, 1);
      a_.shift_imm(kShr, RAX, 1);
      a_.shift_imm(kShr, RCX, 63);
      a_.shift_imm(kShl, RCX, 63);
    } else {
      a_.shift32_imm(kShl, RAX, 1);
      a_.shift32_imm(kShr, RAX, 1);
      a_.shift32_imm(kShr, RCX, 31);
      a_.shift32_imm(kShl, RCX, 31);
    }
    a_.alu(kOr, RAX, RCX);
    fp_write_bits(d.rd, RAX, dbl);
  }
  // kind 0: feq (quiet), 1: flt, 2: fle (signalling: NV for any NaN, as comisd raises IE).
  void fcmp(unsigned i, const Decoded& d, int kind, bool dbl) {
    if (!dbl) {
      box_check(i, d.rs1);
      box_check(i, d.rs2);
    }
    if (kind == 0) {
      fload(X0, d.rs1, dbl);
      a_.comis_m(false, dbl, X0, fm(d.rs2));
      a_.setcc(kE, RAX);
      a_.setcc(kNP, RCX);  // unordered sets ZF too
      a_.alu32(kAnd, RAX, RCX);
    } else {
      fload(X0, d.rs2, dbl);  // rs2 > rs1 (above: ordered, CF = ZF = 0), or >=
      a_.comis_m(true, dbl, X0, fm(d.rs1));
      a_.setcc(kind == 1 ? kA : kAE, RAX);
    }
    a_.movzx8(RAX, RAX);
    commit(d.rd, RAX);
    know(d.rd, small_fact());
  }
  // fcvt.{s,d}.{w,wu,l}: `wide` a 64-bit source, `unsign` a 32-bit unsigned one.
  void int_to_fp(const Decoded& d, bool dbl, bool wide, bool unsign) {
    Reg A = src(d.rs1, RDX);
    if (unsign) {
      a_.mov32(RDX, A);
      A = RDX;
    }
    a_.cvtsi2f(dbl, wide || unsign, X0, A);
    fp_store(d.rd, dbl, X0);
  }
  // fcvt.{w,l}.{s,d}: RTZ truncates, the dynamic mode rounds per MXCSR. The host's answer
  // for NaN and out-of-range inputs (the "integer indefinite", the most negative value)
  // is not RISC-V's (which saturates): the interpreter runs the instruction then.
  void fp_to_int(unsigned i, const Decoded& d, bool dbl, bool wide) {
    if (!dbl) box_check(i, d.rs1);
    a_.cvtf2si(dbl, wide, d.rm == 1, RAX, fm(d.rs1));
    if (wide) {
      a_.mov(RCX, RAX);
      a_.neg(RCX);  // overflows for the most negative value only
      a_.jcc(kO, interpret_at(i));
    } else {
      a_.alu32_imm(kCmp, RAX, INT32_MIN);
      a_.jcc(kE, interpret_at(i));
      a_.movsxd(RAX, RAX);
    }
    commit(d.rd, RAX);
    if (!wide) know(d.rd, sext_fact());
  }

  // ---- templates the emitters share ----
  void multiply(const Decoded& d, bool word) {
    if (d.rs2 != 0 && !allocated(d.rs2)) {  // rs2 straight from the hart
      const Reg D = target(d.rd);
      a_.mov(D, src(d.rs1, D));
      if (!word) {
        a_.imul_mem(D, xmem(d.rs2));
      } else {
        a_.imul32_mem(D, xmem(d.rs2));
        a_.movsxd(D, D);
      }
      commit(d.rd, D);
      return;
    }
    const Reg B = src(d.rs2, RCX);
    const Reg D = target(d.rd, B);
    a_.mov(D, src(d.rs1, D));
    if (!word) {
      a_.imul(D, B);
    } else {
      a_.imul32(D, B);
      a_.movsxd(D, D);
    }
    commit(d.rd, D);
  }

  // The high 64 bits of rs1 * rs2 (mulh: both signed, mulhsu: rs1 signed, mulhu: neither).
  void multiply_high(const Decoded& d, bool signed1, bool signed2) {
    const Reg B = src(d.rs2, RCX);
    a_.mov(RAX, src(d.rs1, RAX));
    if (signed2) {
      a_.imul1(B);
    } else {
      a_.mul1(B);
      if (signed1) {  // signed rs1: subtract rs2 when rs1 < 0
        a_.mov(RAX, src(d.rs1, RAX));
        a_.shift_imm(kSar, RAX, 63);
        a_.alu(kAnd, RAX, B);
        a_.alu(kSub, RDX, RAX);
      }
    }
    commit(d.rd, RDX);
  }

  // rd = rs1 op ~rs2
  void alu_not(const Decoded& d, Alu op) {
    const Reg A = src(d.rs1, RCX);
    a_.mov(RAX, src(d.rs2, RAX));
    a_.not_(RAX);
    a_.alu(op, RAX, A);
    commit(d.rd, RAX);
  }

  void binop(const Decoded& d, Alu op, bool word) {
    const Fact a = fact(d.rs1), b = fact(d.rs2);
    Fact r;
    if (word) {
      r = sext_fact();
    } else if (op == kAnd) {
      r = and_fact(a, b);
    } else if (op == kOr || op == kXor) {
      r = or_fact(a, b);
    }
    const bool plus_zero = op == kAdd || op == kOr || op == kXor;
    if (!word && ((plus_zero && d.rs1 == 0) || ((plus_zero || op == kSub) && d.rs2 == 0))) {
      // c.mv (add rd, x0, rs2) and the like: a move
      const unsigned from = d.rs1 == 0 ? d.rs2 : d.rs1;
      const Reg D = target(d.rd);
      a_.mov(D, src(from, D));
      r = fact(from);
      commit(d.rd, D);
      know(d.rd, r);
      return;
    }
    binop_code(d, op, word);
    know(d.rd, r);
  }
  void binop_code(const Decoded& d, Alu op, bool word) {
    if (d.rs1 == 0 && op == kSub) {  // neg, negw
      const Reg D = target(d.rd);
      a_.mov(D, src(d.rs2, D));
      if (word && fact(d.rs2).nn) {  // -x of x below 2^31 is its own sign extension
        rely(d.rs2);
        a_.neg(D);
      } else if (word) {
        a_.neg32(D);
        a_.movsxd(D, D);
      } else {
        a_.neg(D);
      }
      commit(d.rd, D);
      return;
    }
    if (d.rs2 != 0 && !allocated(d.rs2)) {  // rs2 straight from the hart
      const Reg D = target(d.rd);
      a_.mov(D, src(d.rs1, D));
      if (word) {
        a_.alu32_mem(op, D, xmem(d.rs2));
        a_.movsxd(D, D);
      } else {
        a_.alu_mem(op, D, xmem(d.rs2));
      }
      commit(d.rd, D);
      return;
    }
    const Reg B = src(d.rs2, RCX);
    const Reg D = target(d.rd, B);
    a_.mov(D, src(d.rs1, D));
    if (word) {
      a_.alu32(op, D, B);
      a_.movsxd(D, D);
    } else {
      a_.alu(op, D, B);
    }
    commit(d.rd, D);
  }

  void set_less(const Decoded& d, Cond cc) {
    const Reg B = src(d.rs2, RCX);
    const Reg A = src(d.rs1, RAX);
    a_.alu(kCmp, A, B);
    a_.setcc(cc, RDX);
    a_.movzx8(RDX, RDX);
    commit(d.rd, RDX);
    know(d.rd, small_fact());
  }

  void shift_reg(const Decoded& d, Shift op, bool word) {
    a_.mov(RCX, src(d.rs2, RCX));
    const Reg D = target(d.rd);
    a_.mov(D, src(d.rs1, D));
    if (word) {
      a_.shift32_cl(op, D);
      a_.movsxd(D, D);
    } else {
      a_.shift_cl(op, D);
    }
    commit(d.rd, D);
    if (word) know(d.rd, sext_fact());
  }

  // rd = rs2 + (rs1 [zero-extended from 32 bits]) * scale
  void add_scaled(const Decoded& d, unsigned scale, bool uw) {
    const Reg B = src(d.rs2, RCX);
    Reg A = src(d.rs1, RAX);
    if (uw) {
      a_.mov32(RAX, A);
      A = RAX;
    }
    const Reg D = target(d.rd);
    a_.lea_scaled(D, B, A, scale);
    commit(d.rd, D);
  }

  // rd = rs1, replaced by rs2 when `replace` holds after cmp rs1, rs2.
  void minmax(const Decoded& d, Cond replace) {
    const Reg B = src(d.rs2, RCX);
    a_.mov(RAX, src(d.rs1, RAX));
    a_.alu(kCmp, RAX, B);
    a_.cmov(replace, RAX, B);
    commit(d.rd, RAX);
  }

  // div[u][w], rem[u][w]: `word` on the low 32 bits, `sign` signed, `rem` the remainder.
  void divide(const Decoded& d, bool word, bool sign, bool rem) {
    const Reg B = src(d.rs2, RCX);
    a_.mov(RAX, src(d.rs1, RAX));
    Label& nonzero = new_label();
    Label& divide = new_label();
    Label& done = new_label();
    if (word) {
      a_.alu32_imm(kCmp, B, 0);
    } else {
      a_.alu_imm(kCmp, B, 0);
    }
    a_.jcc(kNE, nonzero);
    // Division by zero: quotient all ones, remainder the dividend.
    if (rem) {
      a_.mov(RDX, RAX);
    } else {
      a_.mov_imm(RAX, ~0ull);
    }
    a_.jmp(done);
    a_.bind(nonzero);
    if (sign) {
      // x / -1 = -x (wrapping: the overflow case MIN / -1 = MIN), x % -1 = 0.
      if (word) {
        a_.alu32_imm(kCmp, B, -1);
      } else {
        a_.alu_imm(kCmp, B, -1);
      }
      a_.jcc(kNE, divide);
      if (rem) {
        a_.mov_imm(RDX, 0);
      } else if (word) {
        a_.mov32(RAX, RAX);
        a_.neg(RAX);  // the low 32 bits are the wrapped 32-bit negation
      } else {
        a_.neg(RAX);
      }
      a_.jmp(done);
      a_.bind(divide);
      if (word) {
        a_.cdq();
        a_.idiv1_32(B);
      } else {
        a_.cqo();
        a_.idiv1(B);
      }
    } else {
      a_.mov_imm(RDX, 0);
      if (word) {
        a_.div1_32(B);
      } else {
        a_.div1(B);
      }
    }
    a_.bind(done);
    const Reg R = rem ? RDX : RAX;
    if (word) a_.movsxd(R, R);
    commit(d.rd, R);
    if (word) know(d.rd, sext_fact());
  }

  void alu_imm(const Decoded& d, Alu op, bool word) {
    const int32_t imm = d.imm;
    const Reg D = target(d.rd);
    if (d.rs1 == 0 && op != kAnd) {  // li: the constant itself
      a_.mov_imm(D, static_cast<uint64_t>(int64_t{imm}));
      commit(d.rd, D);
      know(d.rd, imm >= 0 ? small_fact() : sext_fact());
      return;
    }
    const Fact a = fact(d.rs1);
    if (word && imm == 0 && op == kAdd) {  // sext.w: a move when it is already
      if (a.sx) {
        rely(d.rs1);
        a_.mov(D, src(d.rs1, D));
      } else {
        a_.movsxd(D, src(d.rs1, D));
      }
      commit(d.rd, D);
      know(d.rd, {true, a.nn, a.sx ? a.dep : 0});
      return;
    }
    a_.mov(D, src(d.rs1, D));
    if (word) {
      a_.alu32_imm(op, D, imm);
      a_.movsxd(D, D);
    } else if (imm != 0 || op == kAnd) {
      a_.alu_imm(op, D, imm);
    }
    commit(d.rd, D);
    // What the immediate (sign-extended from 12 bits) keeps: a non-negative one has the
    // upper 53 bits clear, a negative one set.
    Fact r;
    if (word) {
      r = sext_fact();
    } else if (op == kAnd) {
      r = imm >= 0 ? small_fact() : a;
    } else if (op == kOr) {
      r = imm >= 0 ? a : sext_fact();
    } else if (op == kXor) {
      r = imm >= 0 ? a : Fact{a.sx, false, a.dep};
    } else if (imm == 0) {  // mv
      r = a;
    }
    know(d.rd, r);
  }

  void set_less_imm(const Decoded& d, Cond cc) {
    const Reg A = src(d.rs1, RAX);
    a_.alu_imm(kCmp, A, d.imm);
    a_.setcc(cc, RDX);
    a_.movzx8(RDX, RDX);
    commit(d.rd, RDX);
    know(d.rd, small_fact());
  }

  // `word`: on the low 32 bits, sign-extended.
  void shift_by_imm(const Decoded& d, Shift op, bool word) {
    const Reg D = target(d.rd);
    a_.mov(D, src(d.rs1, D));
    const unsigned sh = static_cast<unsigned>(d.imm) & (word ? 31 : 63);
    Fact r;
    if (word) {
      a_.shift32_imm(op, D, sh);
      // A logical right shift by 1 or more leaves bit 31 clear: the 32-bit operation's
      // zero extension is the sign extension.
      if (op == kShr && sh != 0) {
        r = small_fact();
      } else {
        a_.movsxd(D, D);
        r = sext_fact();
      }
    } else {
      a_.shift_imm(op, D, sh);
      if (op == kShr && sh >= 33) r = small_fact();
      if (op == kSar && sh >= 32) r = sext_fact();
    }
    commit(d.rd, D);
    know(d.rd, r);
  }

  // rd = f(rs1), f emitted by `op(D, A)`.
  template <typename F>
  void unary(const Decoded& d, F op) {
    const Reg D = target(d.rd);
    const Reg A = src(d.rs1, D);
    op(D, A);
    commit(d.rd, D);
  }

  // rax = the host address of instruction i's access; jumps to `miss` with rax = the
  // virtual address unless the TLB maps the page in the current context and the access
  // stays in it. Clobbers rcx, rdx.
  void tlb_check(unsigned i, const Decoded& d, unsigned size, int32_t tlb, Label& miss) {
    if (d.rs1 != 0 && allocated(d.rs1)) {
      a_.lea(RAX, mem(host(d.rs1), d.imm));
    } else {
      a_.mov(RAX, src(d.rs1, RAX));
      add_imm64(RAX, d.imm);
    }
    if (L_.log_stores && tlb == L_.tlb_store) {
      a_.jmp(miss);  // (the host address is never used)
      return;
    }
    if (sites_[i] < 0) {
      tlb_lookup(size, tlb, miss);
      a_.alu_mem(kAdd, RAX, mem_idx(RBP, RCX, tlb + 8));  // + addend: the host address
      return;
    }
    // The access's slot: the page an access of its kind left there last (an aligned
    // access in it keeps the page's address under the mask; one that is not aligned
    // looks up, as it may cross).
    const int32_t at = site_offset(static_cast<unsigned>(sites_[i]));
    Label& refill = new_label();
    Label& hit = new_label();
    a_.mov(RCX, RAX);
    a_.alu_imm(kAnd, RCX, -4096 | static_cast<int32_t>(size - 1));
    a_.alu_mem(kCmp, RCX, mem(RSP, at));
    a_.jcc(kNE, refill);
    a_.alu_mem(kAdd, RAX, mem(RSP, at + 8));
    a_.bind(hit);
    cold([this, &refill, &hit, &miss, size, tlb, at] {
      a_.bind(refill);
      tlb_lookup(size, tlb, miss);
      a_.mov(RDX, RAX);
      a_.alu_imm(kAnd, RDX, -4096);
      a_.store64(mem(RSP, at), RDX);
      a_.load64(RDX, mem_idx(RBP, RCX, tlb + 8));
      a_.store64(mem(RSP, at + 8), RDX);
      a_.alu(kAdd, RAX, RDX);
      a_.jmp(hit);
    });
  }
  // The TLB lookup of the access at rax (kept): rcx = the entry's offset from the hart,
  // or a jump to `miss`. Clobbers rdx.
  void tlb_lookup(unsigned size, int32_t tlb, Label& miss) {
    a_.mov(RCX, RAX);
    a_.shift_imm(kShr, RCX, 12);
    // The tag is that of the access's last byte: an access that crosses into the next
    // page misses (the slow path splits it); a misaligned one inside a page is done by
    // the host as it is, with the result the slow path would give.
    if (size > 1) {
      a_.lea(RDX, mem(RAX, static_cast<int32_t>(size - 1)));
      a_.shift_imm(kShr, RDX, 12);
    } else {
      a_.mov(RDX, RCX);
    }
    a_.alu_mem(kOr, RDX, mem(RBP, L_.data_ctx));
    a_.alu_mem(kXor, RCX, mem(RBP, L_.tlb_salt));  // Hart::tlb_slot
    a_.alu32_imm(kAnd, RCX, static_cast<int32_t>(kTlbSize - 1));
    a_.shift32_imm(kShl, RCX, 4);
    a_.alu_mem(kXor, RDX, mem_idx(RBP, RCX, tlb));
    a_.jcc(kNE, miss);
  }

  // An integer load, or (fp) flw/fld into f[rd].
  void load(unsigned i, const Decoded& d, unsigned size, bool sign, bool fp = false) {
    Label& miss = new_label();
    Label& resume = new_label();
    tlb_check(i, d, size, L_.tlb_load, miss);
    if (fp) {
      a_.load(RDX, mem(RAX), size, false);
      fp_write_bits(d.rd, RDX, size == 8);
    } else {
      const Reg D = d.rd != 0 && allocated(d.rd) ? host(d.rd) : RDX;
      a_.load(D, mem(RAX), size, sign);
      if (d.rd != 0) commit(d.rd, D);  // (a no-op move when D is rd's own register)
      if (size < 8 && (sign || size < 4)) know(d.rd, sign ? sext_fact() : small_fact());
    }
    a_.bind(resume);
    const uint16_t off = in_[i].off;
    const uint32_t dirty_here = dirty();
    cold([this, &miss, &resume, i, d, size, sign, off, dirty_here, fp] {
      a_.bind(miss);
      call_slow(reinterpret_cast<const void*>(slow_.load), [&](int32_t depth) {
        a_.mov(RSI, RAX);
        a_.load64(RDX, mem(RSP, depth));
        add_imm64(RDX, off);
        a_.mov_imm(RCX, size | (sign ? 0x100u : 0u));
      });
      Label& ok = new_label();
      a_.test(RDX, RDX);
      a_.jcc(kNE, ok);
      exit_to(kExitBreak, i, dirty_here);
      a_.bind(ok);
      if (fp) {
        mark_fs_dirty();
        fp_write_bits(d.rd, RAX, size == 8);
      } else {
        commit(d.rd, RAX);
      }
      a_.jmp(resume);
    });
  }

  // An integer store, or (fp) fsw/fsd of f[rs2].
  void store(unsigned i, const Decoded& d, unsigned size, bool fp = false) {
    Label& miss = new_label();
    Label& resume = new_label();
    tlb_check(i, d, size, L_.tlb_store, miss);
    Reg V = RDX;
    if (fp) {
      a_.load(RDX, fm(d.rs2), size, false);
    } else {
      V = src(d.rs2, RDX);
    }
    a_.store(mem(RAX), V, size);
    a_.bind(resume);
    const uint16_t off = in_[i].off;
    const uint32_t dirty_here = dirty();
    cold([this, &miss, &resume, i, d, size, off, dirty_here, fp] {
      a_.bind(miss);
      call_slow(reinterpret_cast<const void*>(slow_.store), [&](int32_t depth) {
        if (fp) {
          a_.load(RDX, fm(d.rs2), size, false);
        } else {
          a_.mov(RDX, src(d.rs2, RDX));  // before rsi/rcx/r8 are overwritten
        }
        a_.mov(RSI, RAX);
        a_.load64(RCX, mem(RSP, depth));
        add_imm64(RCX, off);
        a_.mov_imm(R8, size);
      });
      Label& ok = new_label();
      a_.test(RAX, RAX);
      a_.jcc(kNE, ok);
      exit_to(kExitBreak, i, dirty_here);
      a_.bind(ok);
      a_.jmp(resume);
    });
  }

  void branch(unsigned i, const Decoded& d, Cond cc) {
    if (d.rs2 == 0) {  // against x0: test sets the flags cmp with 0 would
      const Reg A = src(d.rs1, RAX);
      a_.test(A, A);
    } else {
      const Reg B = src(d.rs2, RCX);
      const Reg A = src(d.rs1, RAX);
      a_.alu(kCmp, A, B);
    }
    if (const unsigned t = forward_target(i, in_[i].off + int64_t{d.imm}); t != 0) {
      // Forward inside the compiled code: a jump to instruction t. Its exits count their
      // slot as retired instructions, so the taken path, which skips t - i - 1 of them,
      // takes those off rbx (lea leaves the flags alone).
      const int32_t skip = static_cast<int32_t>(t - i - 1);
      if (skip != 0) a_.lea(RBX, mem(RBX, -skip));
      a_.jcc(cc, join_label(t));
      if (skip != 0) a_.lea(RBX, mem(RBX, skip));
      return;
    }
    Label& taken = new_label();
    a_.jcc(cc, taken);
    const int64_t rel = in_[i].off + static_cast<int64_t>(d.imm);
    const uint32_t dirty_here = dirty();
    cold([this, &taken, i, rel, dirty_here] {
      a_.bind(taken);
      Label& out = new_label();
      if (rel == 0) {  // back to the block's start: a native loop
        loop_back(i + 1, out);
      } else if (const unsigned t = backward_target(i, rel); t != 0) {
        loop_to(i, t, out);
      }
      a_.bind(out);
      chain_exit(kExitTaken, i, i + 1, rel, dirty_here);
    });
  }

  // The instruction a branch from i to block offset `rel` lands on when that is further on
  // in the compiled code (the code after the last compiled one too, unless a jump ended
  // it), else 0.
  unsigned forward_target(unsigned i, int64_t rel) const {
    if (rel <= in_[i].off) return 0;
    for (unsigned t = i + 1; t < n_; t++) {
      if (in_[t].off == rel) return t;
      if (in_[t].off > rel) return 0;  // into the middle of an instruction
    }
    if (isa::ends_block(in_[n_ - 1].d.op)) return 0;
    const int64_t end = n_ < ninsns_ ? int64_t{in_[n_].off} : int64_t{nbytes_};
    return end == rel ? n_ : 0;
  }
  // Where forward branches to instruction t land (made on first use).
  Label& join_label(unsigned t) {
    if (joins_.size() <= t) joins_.resize(t + 1);
    Join& j = joins_[t];
    if (j.label == nullptr) j.label = &new_label();
    j.fs_marked = j.fs_marked && fs_marked_;
    j.sx &= sx_;
    j.nn &= nn_;
    for (unsigned r = 1; r < 32; r++) j.dep[r] |= dep_[r];
    return *j.label;
  }
  // Binds instruction t's label when branches land there. What the straight-line path
  // knows holds after it only if it held on every path in: the registers written so far
  // (dirty_) only grow along the code, and the allocated ones were all loaded at the
  // block's entry, so storing one no path wrote stores its own value; FS Dirty must
  // have been marked on every path.
  void join(unsigned t) {
    if (t >= joins_.size() || joins_[t].label == nullptr) return;
    const Join& j = joins_[t];
    a_.bind(*j.label);
    fs_marked_ = fs_marked_ && j.fs_marked;
    sx_ &= j.sx;
    nn_ &= j.nn;
    for (unsigned r = 1; r < 32; r++) dep_[r] = (sx_ >> r & 1) != 0 ? dep_[r] | j.dep[r] : 0;
  }

  struct Join {
    Label* label = nullptr;
    bool fs_marked = true;                      // FS Dirty on every branch here
    uint32_t sx = ~0u, nn = ~0u, dep[32] = {};  // the facts of every branch here
  };

  const uintptr_t base_;  // where the code will run (for jumps to the shared code)
  const Insn* in_;
  const unsigned n_;
  const unsigned ninsns_;
  const void* const block_;
  const uint32_t page_offset_;
  const uint32_t nbytes_;
  const Layout& L_;
  const SlowPaths& slow_;
  Compiled& out_;
  Emitter a_;
  int8_t host_[32];
  uint32_t written_mask_ = 0;  // allocated or not, the registers the block writes
  uint32_t dirty_ = 0;         // allocated registers written so far (in emission order)
  bool loops_ = false;         // the block has a native loop back to its start
  bool has_fp_ = false;        // the block has F/D instructions
  bool fs_marked_ = false;     // mstatus.FS is Dirty on the straight-line path from here
  std::vector<Reg> saved_;     // caller-saved host registers holding guest registers
  std::vector<int8_t> sites_;  // by instruction: its page cache slot, or -1
  std::deque<Label> labels_;
  std::vector<Join> joins_;          // by instruction: forward branches' landing places
  uint64_t back_targets_ = 0;        // instructions (after the first) jumped back to
  std::vector<Label*> back_labels_;  // their labels
  uint32_t sx_ = 1, nn_ = 1;         // the facts (x0 is 0)
  uint32_t dep_[32] = {};
  const uint32_t assume_;  // registers sign-extended from the entry on (see the constructor)
  const bool guard_;
  uint32_t used_ = 0;  // the assumptions relied on
  Label loop_top_, epilogue_;
  std::vector<std::function<void()>> cold_;
};

}  // namespace

Layout::Shared emit_shared(CodeArena& arena, const Layout& L) {
  Emitter a;
  const uintptr_t base = arena.next();
  Label exit, miss;
  // The exit (eax = the exit code): the global registers back to the hart, then return.
  a.bind(exit);
  for (unsigned g = 0; g < std::size(kGlobalGuest); g++)
    a.store64(mem(RBP, L.x + 8 * static_cast<int32_t>(kGlobalGuest[g])), kGlobalHost[g]);
  emit_return(a, L);
  // The probe of a JALR exit, a function (see Layout::Shared; every register of the block
  // is back in the hart then but the global ones): the target in rdx through the fetch TLB
  // to its host address (probe_host comes in after that with it in rax), that bucket's
  // first block, and its chain entry in r9 if it is compiled, its bytes were found current
  // in this chain epoch, and the budget allows it whole (as a linked stub checks).
  size_t probe = 0, probe_host = 0;
  if (L.table.blocks != nullptr) {
    const Layout::BlockTable& t = L.table;
    probe = a.size();
    a.mov(RCX, RDX);
    a.shift_imm(kShr, RCX, 12);
    a.mov(RAX, RCX);
    a.alu_mem(kOr, RAX, mem(RBP, L.fetch_ctx));
    a.alu_mem(kXor, RCX, mem(RBP, L.tlb_salt));  // Hart::tlb_slot
    a.alu32_imm(kAnd, RCX, static_cast<int32_t>(kTlbSize - 1));
    a.shift32_imm(kShl, RCX, 4);
    a.alu_mem(kCmp, RAX, mem_idx(RBP, RCX, L.tlb_fetch));
    a.jcc(kNE, miss);
    a.mov(RAX, RDX);
    a.alu_mem(kAdd, RAX, mem_idx(RBP, RCX, L.tlb_fetch + 8));
    probe_host = a.size();
    // The bucket's first block (r8): byte offset ((host >> 1) & mask) * 8.
    a.mov(RCX, RAX);
    a.shift_imm(kShl, RCX, 2);
    a.alu_imm(kAnd, RCX, static_cast<int32_t>(t.mask << 3));
    a.mov_imm64(R8, reinterpret_cast<uint64_t>(t.blocks));
    a.load64(R8, mem_idx(R8, RCX));
    a.test(R8, R8);
    a.jcc(kE, miss);
    a.alu_mem(kCmp, RAX, mem(R8, t.key));
    a.jcc(kNE, miss);
    a.load64(R9, mem(R8, t.native));
    a.test(R9, R9);
    a.jcc(kE, miss);
    a.mov_imm64(R10, reinterpret_cast<uint64_t>(&g_chain_epoch));
    a.load(R10, mem(R10), 4, false);
    a.alu32_mem(kCmp, R10, mem(R8, t.verified));
    a.jcc(kNE, miss);
    a.load(R10, mem(R8, t.ninsns), 4, false);
    a.alu(kAdd, R10, RBX);
    a.alu(kAdd, R10, R11);
    a.alu_mem(kCmp, R10, mem(RBP, L.loop_limit));
    a.jcc(kA, miss);
    a.alu(kAdd, RBX, R11);
    a.store64(mem(RSP, 8), RDX);  // bpc (above the return address)
    a.load(R10, mem(R8, t.chain_entry), 4, false);
    a.alu(kAdd, R9, R10);
    a.ret();
    a.bind(miss);
    a.mov_imm(R9, 0);
    a.ret();
  }
  const std::vector<uint8_t>& code = a.code();
  const void* p = arena.add(code.data(), code.size());
  if (p == nullptr) return {};
  const auto at = reinterpret_cast<uintptr_t>(p);
  if (at != base) std::abort();  // next() said where it would go
  if (probe == 0) return {at, 0, 0};
  return {at, at + probe, at + probe_host};
}

void compile_block(const Insn* insns, unsigned n, const void* block, uint32_t page_offset,
                   uint32_t nbytes, const Layout& layout, const SlowPaths& slow, CodeArena& arena,
                   bool& full, Compiled& out, const uint64_t* regs) {
  full = false;
  out.code = nullptr;
  out.nsites = 0;
  unsigned k = 0;
  while (k < n && takes(insns[k].d)) {
    const Op op = insns[k].d.op;
    k++;
    if (isa::ends_block(op)) break;  // jal, jalr: the block's last exit
  }
  // A prefix of one or two instructions before the interpreter takes over again costs more
  // in the call than it saves.
  if (k == 0 || (k < n && k < 3)) return;
  // Registers the block reads and never writes that hold sign-extended 32-bit values now:
  // a first compilation assumes they stay so and notes which assumptions it used; the
  // real one checks those at its entry.
  uint32_t assume = 0;
  if (regs != nullptr) {
    uint32_t read = 0, written = 0;
    for (unsigned i = 0; i < k; i++) {
      const Decoded& d = insns[i].d;
      const Uses u = uses_of(d);
      if (u.rs1) read |= 1u << d.rs1;
      if (u.rs2) read |= 1u << d.rs2;
      if (u.rd) written |= 1u << d.rd;
    }
    for (unsigned r = 1; r < 32; r++) {
      const uint64_t v = regs[r];
      if ((read & ~written) >> r & 1 && static_cast<uint64_t>(static_cast<int32_t>(v)) == v)
        assume |= 1u << r;
    }
    if (assume != 0) {
      Compiled scratch;
      Compiler first(insns, k, n, block, page_offset, nbytes, layout, slow, arena.next(), scratch,
                     assume, false);
      first.compile();
      assume = first.used_assumptions();
    }
  }
  Compiler c(insns, k, n, block, page_offset, nbytes, layout, slow, arena.next(), out, assume,
             true);
  const std::vector<uint8_t>& code = c.compile();
  const void* p = arena.add(code.data(), code.size());
  if (p == nullptr) {
    full = true;
    out.nsites = 0;
    return;
  }
  out.code = reinterpret_cast<NativeBlock>(const_cast<void*>(p));
  out.size = static_cast<uint32_t>(code.size());
}

void link_exit(CodeArena& arena, NativeBlock from, uint32_t stub, bool keyed, NativeBlock to,
               uint32_t to_chain_entry, uintptr_t to_key, uint32_t retired, uint64_t epoch) {
  const uint8_t* const exec = reinterpret_cast<const uint8_t*>(from) + stub;
  uint8_t* const w = arena.writable(exec);
  // Only what changes is written: a store into code the host CPU has fetched costs it a
  // pipeline flush.
  auto put = [](uint8_t* at, auto v) {
    if (std::memcmp(at, &v, sizeof(v)) != 0) std::memcpy(at, &v, sizeof(v));
  };
  const uint8_t* const target = reinterpret_cast<const uint8_t*>(to) + to_chain_entry;
  if (keyed) put(w + kStubKey, static_cast<uint64_t>(to_key));
  put(w + kStubBudget, static_cast<int32_t>(retired));
  put(w + kStubEpoch, static_cast<uint32_t>(epoch));
  put(w + kStubJump, static_cast<int32_t>(target - (exec + kStubEnd)));
}

}  // namespace nimbus::cpu::jit
