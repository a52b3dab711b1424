// The JIT: compiles a predecoded block's instructions to x86-64 code (the block
// interpreter in interp.cpp decides when, and runs what the JIT does not take).
//
// Compiled code keeps the guest registers it uses most in host registers for the length
// of the block, loads and stores through the same software TLB as the interpreter (with
// the interpreter's slow paths for misses, misaligned accesses and devices), and runs a
// block that branches back to its own start as a native loop until the budget it is given
// runs out. Its exits to another block (a taken branch, JAL, JALR, the fall-through) can
// be chained: once the block loop has seen one lead to another compiled block, it patches
// the exit to jump straight there next time (see link_exit).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cpu/isa/decode.h"

namespace nimbus::cpu {
class Hart;
}

namespace nimbus::cpu::jit {

class CodeArena;

// One instruction of the block: decoded, and its byte offset from the block's start.
struct Insn {
  isa::Decoded d;
  uint16_t off;
};

// What compiled code returns: (kind << 16) | slot, slot being the index of the instruction
// the exit is about (for kExitContinue, the first one not run: the interpreter goes on
// there, and slot == ninsns means the block is done with next_pc set).
enum ExitKind : uint32_t {
  kExitContinue = 0,
  kExitTaken = 1,  // the conditional branch at slot was taken (next_pc set)
  kExitBreak = 2,  // the instruction at slot trapped (take_trap ran)
  kExitGuard = 3,  // (slot 0) an entry assumption failed: the interpreter runs the block,
                   // which should be compiled again without assumptions
};

// Where a run of compiled code ended: the block whose exit it returned from (chained
// exits may have led it through other compiled blocks), and that block's guest address.
// Written by compiled code on return.
struct ChainOut {
  const void* block;  // the `block` given to compile_block
  uint64_t bpc;
};

// Compiled code: called with the hart, the guest address of the block's first instruction
// (the same host code serves every virtual address it is mapped at) and where to say
// which block it returned from.
using NativeBlock = uint32_t (*)(Hart* h, uint64_t bpc, ChainOut* out);

// The slow paths compiled code calls (interp.cpp): they set h.pc to `pc` first, and on
// failure have taken the trap.
struct LoadResult {
  uint64_t value;
  uint64_t ok;
};
struct SlowPaths {
  // kind = size | (sign-extend ? 0x100 : 0)
  LoadResult (*load)(Hart* h, uint64_t va, uint64_t pc, uint64_t kind);
  uint64_t (*store)(Hart* h, uint64_t va, uint64_t value, uint64_t pc, uint64_t size);
};

// Where compiled code finds the hart's fields (byte offsets from the Hart).
struct Layout {
  int32_t x, next_pc, data_ctx, tlb_load, tlb_store, loop_limit, loop_done, tlb_salt;
  int32_t fetch_ctx, tlb_fetch;
  int32_t f, frm, mstatus, fp_live, mxcsr;
  // The block table compiled JALR exits probe (see "indirect jumps" below); none when
  // `blocks` is null.
  struct BlockTable {
    const void* const* blocks = nullptr;  // Block* by bucket: (host address >> 1) & mask
    uint32_t mask = 0;
    // Field offsets in a Block: host address (uint64), length in instructions (uint32),
    // compiled code (pointer), its chain entry (uint32), the chain epoch (low half) at
    // which its bytes were last found current (uint32).
    int32_t key = 0, ninsns = 0, native = 0, chain_entry = 0, verified = 0;
  } table;
  // The arena's shared code (emit_shared); blocks compiled without it carry their own
  // return path and no table probe.
  struct Shared {
    uintptr_t exit = 0;  // the return to the block loop: eax = the exit code
    // A JALR exit's table probe, called with rdx = the target and r11 = the instructions
    // the exit completes: returns r9 = the chain entry to jump to (bpc and rbx updated),
    // or 0 for none. probe_host is the same with rax = the target's host address (the
    // fetch TLB already looked up).
    uintptr_t probe = 0;
    uintptr_t probe_host = 0;
  } shared;
  // Under the JIT checker (EngineKind::kCheckJit) every store goes through the slow path,
  // which records it in the hart's AccessLog (so that it can be undone and compared).
  bool log_stores = false;
};

// Emits the code every block of `arena` shares, after each reset and before the first
// block: the return to the block loop (stores the global registers, fills the ChainOut,
// restores the frame) and the JALR exits' table probe (Layout::table). Zeros when the
// arena is full.
Layout::Shared emit_shared(CodeArena& arena, const Layout& layout);
// True when the host has FMA3 (the fused multiply-adds are compiled only then).
bool host_has_fma();
Layout layout_of(const Hart& h);

// ---- chaining ----
//
// A linked exit first checks, in this order: for a successor in another page or after a
// JALR, that the fetch TLB maps the target's guest address to the successor's host
// address (same-page successors are at a fixed distance); the budget (the instructions
// retired so far in this call, plus the ones the exit completes, plus the successor's
// length, must not exceed Hart::jit_loop_limit, so the successor runs whole within the
// chunk and the run: interrupts, the stop flag and run(n) stay exact); and the chain
// epoch (below). Then it counts what it completed, sets bpc and jumps to the successor's
// chain entry, which reloads its registers. An exit not linked fails the budget check.
//
// Indirect jumps (JALR: returns, calls through pointers, switch tables) go to many
// places, so their stub keeps only its first successor. When that one does not match,
// the exit probes the block loop's own table (Layout::table) for a compiled block at the
// target's host address whose bytes were found current in this chain epoch, and jumps
// there under the same budget check; only a miss returns to the block loop.
//
// The chain epoch: a link is made (link_exit) only after the successor's bytes were
// compared with memory, and stays valid while the epoch is unchanged. Every FENCE.I (any
// hart) and every SBI remote FENCE.I advances it, so every chained jump goes back through
// the block loop's check once: code rewritten and then fenced, as RISC-V requires before
// fetches must see it, is never run stale from a link. Blocks entered from the block loop
// are checked against memory as before.
extern std::atomic<uint64_t> g_chain_epoch;
inline uint64_t chain_epoch() { return g_chain_epoch.load(std::memory_order_acquire); }
// FENCE.I or remote FENCE.I: drops every chained jump of every hart (they are re-made,
// after a fresh check of the code, the next time they are taken).
inline void invalidate_chains() { g_chain_epoch.fetch_add(1, std::memory_order_acq_rel); }

// A chainable exit of a compiled block: the slot whose exit it is (a taken branch's slot,
// or n for the block's end) and the offset of its patchable stub from the code's start.
struct ChainSite {
  uint16_t slot;
  uint32_t stub;
};

struct Compiled {
  NativeBlock code = nullptr;  // entry from the interpreter
  uint32_t size = 0;           // bytes of host code
  uint32_t chain_entry = 0;    // offset of the entry from chained exits
  unsigned nsites = 0;
  ChainSite sites[66];
};

// Compiles the longest supported prefix of the block's `n` instructions into `arena`.
// `block` identifies the block (reported in ChainOut), `page_offset` is its start's offset
// in its 4 KiB page and `nbytes` its length in bytes (its fall-through is bpc + nbytes).
// out.code is nullptr when that prefix is too short to pay or the arena is full (`full`
// set then). `regs`, the hart's x registers now (or null), lets the code assume that
// registers it only reads stay sign-extended 32-bit values where they are now; its entry
// checks that and hands the block to the interpreter when not.
void compile_block(const Insn* insns, unsigned n, const void* block, uint32_t page_offset,
                   uint32_t nbytes, const Layout& layout, const SlowPaths& slow, CodeArena& arena,
                   bool& full, Compiled& out, const uint64_t* regs = nullptr);

// Patches the chainable exit `stub` of `from` (a ChainSite's) to jump to the compiled
// block `to` (its code and chain_entry), whose host address is `to_key`, with `retired` =
// the instructions the exit completes plus `to`'s length, valid while the chain epoch is
// `epoch` (read before `to`'s bytes were checked). `keyed`: the exit checks the
// successor's host address through the fetch TLB (an exit to another page, or a JALR's,
// whose target may be anywhere). Writes only what changes (a store into code the host
// CPU has fetched is costly). A JALR exit is linked at most once per epoch: its caller
// (CodeCache::link) keeps it to its first successor, as one that returns to many callers
// would otherwise be rewritten at every call.
void link_exit(CodeArena& arena, NativeBlock from, uint32_t stub, bool keyed, NativeBlock to,
               uint32_t to_chain_entry, uintptr_t to_key, uint32_t retired, uint64_t epoch);

}  // namespace nimbus::cpu::jit
