// The interpreter. Guest code runs as predecoded blocks: runs of decoded instructions
// within one 4 KiB page (straight-line but for side exits at taken branches), dispatched as
// threaded code, cached per hart by host (= physical) address and checked against the
// bytes in memory each time they are entered, so writes to code by anyone (this hart,
// another hart, a device's DMA) are seen without any invalidation protocol. (The one
// exception: with the JIT, compiled blocks jump straight to each other once linked, and
// such a jump is only re-checked after a FENCE.I or an SBI remote FENCE.I, which is when
// RISC-V requires fetches to see new code; see jit/compiler.h.) Loads, stores
// and fetches go through software TLBs that map a virtual page straight to a host pointer.
// Every instruction has one body, in interp_ops.inc, shared by the block loop, the
// single-instruction path and the plain reference path of the --check-reference engine.
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/fpu.h"
#include "cpu/hart.h"
#include "cpu/isa/decode.h"
#include "cpu/isa/disasm.h"
#include "cpu/isa/insn_class.h"
#include "cpu/jit/code_arena.h"
#include "cpu/jit/compiler.h"

namespace nimbus::cpu {

using isa::Decoded;
using isa::Op;

// What the reference checker records while one instruction runs: stores (so that the fast
// path's can be undone and compared with the reference path's) and device accesses (done
// once, by the fast path; the reference path replays their results).
struct AccessLog {
  struct Store {
    uintptr_t host;  // RAM: host address; device: the physical address
    uint64_t old_value;
    uint64_t value;
    uint8_t size;
    bool mmio;
  };
  struct Mmio {
    uint64_t paddr;
    uint64_t value;
    uint8_t size;
    bool write;
    bool ok;
  };
  std::vector<Store> stores;
  std::vector<Mmio> mmio;
  std::vector<uint64_t> times;  // the time CSR's values read (a device read too)
  size_t mmio_pos = 0;
  size_t time_pos = 0;
  bool replay = false;  // the reference side: device accesses come from `mmio`
  std::string problem;  // set by the replaying side when it cannot follow the recording

  void clear() {
    stores.clear();
    mmio.clear();
    times.clear();
    mmio_pos = 0;
    time_pos = 0;
    problem.clear();
  }
};

namespace {

// kFast: TLB fast paths. kChecked: the same, recording stores in the hart's AccessLog.
// kRef: the reference path, which never reads a TLB (every access is translated).
enum class Path { kFast, kChecked, kRef };

constexpr uint64_t kPageMask = 0xfff;

// ---- access log hooks (slow paths only, except the kChecked store fast path) ----
void log_ram_store(Hart& h, void* host, unsigned size, uint64_t value) {
  AccessLog::Store s{reinterpret_cast<uintptr_t>(host), 0, value, static_cast<uint8_t>(size),
                     false};
  std::memcpy(&s.old_value, host, size);
  h.access_log->stores.push_back(s);
}

bool mmio_read(Hart& h, uint64_t paddr, unsigned size, uint64_t& value) {
  AccessLog* log = h.access_log;
  if (log == nullptr) return h.bus.read(paddr, size, value);
  if (!log->replay) {
    const bool ok = h.bus.read(paddr, size, value);
    log->mmio.push_back({paddr, value, static_cast<uint8_t>(size), false, ok});
    return ok;
  }
  if (log->mmio_pos < log->mmio.size()) {
    const AccessLog::Mmio& m = log->mmio[log->mmio_pos++];
    if (!m.write && m.paddr == paddr && m.size == size) {
      value = m.value;
      return m.ok;
    }
  }
  log->problem =
      fmt::format("the reference path read device address {:#x} ({} bytes), the fast path did not",
                  paddr, size);
  value = 0;
  return true;
}

}  // namespace

uint64_t Hart::read_time() {
  AccessLog* log = access_log;
  if (log == nullptr || !log->replay) {
    const uint64_t t = time_source ? time_source() : 0;
    if (log != nullptr) log->times.push_back(t);
    return t;
  }
  if (log->time_pos < log->times.size()) return log->times[log->time_pos++];
  log->problem = "the reference path read the time CSR, the fast path did not";
  return 0;
}

namespace {

bool mmio_write(Hart& h, uint64_t paddr, unsigned size, uint64_t value) {
  AccessLog* log = h.access_log;
  if (log == nullptr) return h.bus.write(paddr, size, value);
  log->stores.push_back({paddr, 0, value, static_cast<uint8_t>(size), true});
  if (!log->replay) {
    const bool ok = h.bus.write(paddr, size, value);
    log->mmio.push_back({paddr, value, static_cast<uint8_t>(size), true, ok});
    return ok;
  }
  if (log->mmio_pos < log->mmio.size()) {
    const AccessLog::Mmio& m = log->mmio[log->mmio_pos++];
    if (m.write && m.paddr == paddr && m.size == size) return m.ok;
  }
  return true;  // the store logs differ: reported by the comparison
}

// Caches a translation of the page of `va` to host memory if the whole page is RAM and
// the translation and PMP verdict hold for all of it. Returns the host address of `pa`
// (nullptr if not RAM).
uint8_t* tlb_fill(Hart& h, TlbEntry* tlb, uint64_t ctx, uint64_t va, const Translation& t) {
  uint64_t page = t.paddr & ~kPageMask;
  uint8_t* host_page = h.bus.ram_ptr(page, 4096);
  if (host_page == nullptr) return nullptr;
  if (t.page_uniform) {
    TlbEntry& e = tlb[h.tlb_slot(va)];
    e.tag = (va >> 12) | ctx;
    e.addend = reinterpret_cast<uintptr_t>(host_page) - (va & ~kPageMask);
    if (t.page_shift > 12) h.note_superpage(va, t.page_shift);
  }
  return host_page + (t.paddr & kPageMask);
}

// tlb_fill for a store (or AMO, SC): while the dirty-page log is on it marks the page,
// since the entry lets every later store to it (interpreter and JIT fast paths, which
// never mark) skip this path. VirtMachine::take_dirty_pages drops the store TLBs after
// taking the bits, so no entry outlives the mark it was filled with.
uint8_t* store_fill(Hart& h, uint64_t va, const Translation& t) {
  uint8_t* host = tlb_fill(h, h.tlb_store, h.data_ctx, va, t);
  if (host != nullptr) h.bus.mark_dirty(host, 1);
  return host;
}

bool load_slow(Hart& h, uint64_t va, unsigned size, uint64_t& value) {
  if ((va & kPageMask) + size > 4096) {
    // Misaligned across a page boundary: byte by byte, each with its own translation.
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
      uint64_t b;
      if (!load_slow(h, va + i, 1, b)) return false;
      v |= b << (8 * i);
    }
    value = v;
    return true;
  }
  Translation t;
  if (!h.translate(va, Access::kLoad, size, t)) return false;
  if (uint8_t* host = tlb_fill(h, h.tlb_load, h.data_ctx, va, t)) {
    value = 0;
    std::memcpy(&value, host, size);
    return true;
  }
  // MMIO: devices take naturally aligned accesses only.
  if ((t.paddr & (size - 1)) != 0 || !mmio_read(h, t.paddr, size, value)) {
    h.take_trap(kLoadAccessFault, va);
    return false;
  }
  return true;
}

bool store_slow(Hart& h, uint64_t va, unsigned size, uint64_t value) {
  if ((va & kPageMask) + size > 4096) {
    // Check every byte's translation and target before writing any, so a fault leaves
    // memory as it was. Byte stores go to RAM only (no device takes a misaligned store).
    for (unsigned i = 0; i < size; i++) {
      Translation t;
      if (!h.translate(va + i, Access::kStore, 1, t)) return false;
      if (h.bus.ram_ptr(t.paddr, 1) == nullptr) {
        h.take_trap(kStoreAccessFault, va + i);
        return false;
      }
    }
    for (unsigned i = 0; i < size; i++) {
      if (!store_slow(h, va + i, 1, (value >> (8 * i)) & 0xff)) return false;
    }
    return true;
  }
  Translation t;
  if (!h.translate(va, Access::kStore, size, t)) return false;
  if (uint8_t* host = store_fill(h, va, t)) {
    if (h.access_log != nullptr) [[unlikely]]
      log_ram_store(h, host, size, value);
    std::memcpy(host, &value, size);
    return true;
  }
  if ((t.paddr & (size - 1)) != 0 || !mmio_write(h, t.paddr, size, value)) {
    h.take_trap(kStoreAccessFault, va);
    return false;
  }
  return true;
}

// The TLB fast paths take naturally aligned accesses (the tag and the alignment are checked
// in one compare); misaligned ones go through the slow path. `pc` is the instruction's
// address: the slow path may trap, and traps read h.pc.
template <Path P, typename T>
inline bool load(Hart& h, uint64_t va, T& out, uint64_t pc) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_load[h.tlb_slot(va)];
    if (((e.tag ^ ((va >> 12) | h.data_ctx)) | (va & (sizeof(T) - 1))) == 0) [[likely]] {
      std::memcpy(&out, reinterpret_cast<const void*>(va + e.addend), sizeof(T));
      return true;
    }
  }
  h.pc = pc;
  uint64_t v;
  if (!load_slow(h, va, sizeof(T), v)) return false;
  out = static_cast<T>(v);
  return true;
}

template <Path P, typename T>
inline bool store(Hart& h, uint64_t va, T value, uint64_t pc) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_store[h.tlb_slot(va)];
    if (((e.tag ^ ((va >> 12) | h.data_ctx)) | (va & (sizeof(T) - 1))) == 0) [[likely]] {
      void* host = reinterpret_cast<void*>(va + e.addend);
      if constexpr (P == Path::kChecked)
        log_ram_store(h, host, sizeof(T), static_cast<uint64_t>(value));
      std::memcpy(host, &value, sizeof(T));
      return true;
    }
  }
  h.pc = pc;
  return store_slow(h, va, sizeof(T), static_cast<uint64_t>(value));
}

// Fetches the 16-bit parcel at `va` (through the fetch TLB unless `use_tlb` is false: an
// instruction straddling two pages comes here every time it runs).
bool fetch_parcel(Hart& h, uint64_t va, uint16_t& out, bool use_tlb) {
  if (use_tlb) {
    const TlbEntry& e = h.tlb_fetch[h.tlb_slot(va)];
    if (e.tag == ((va >> 12) | h.fetch_ctx)) {
      std::memcpy(&out, reinterpret_cast<const void*>(va + e.addend), 2);
      return true;
    }
  }
  Translation t;
  if (!h.translate(va, Access::kFetch, 2, t)) return false;
  uint8_t* host = tlb_fill(h, h.tlb_fetch, h.fetch_ctx, va, t);
  if (host == nullptr) {  // executing from a device is not supported
    h.take_trap(kInsnAccessFault, va);
    return false;
  }
  std::memcpy(&out, host, 2);
  return true;
}

bool fetch_slow(Hart& h, uint64_t pc, uint32_t& raw, bool use_tlb) {
  uint16_t lo, hi;
  if (!fetch_parcel(h, pc, lo, use_tlb)) return false;
  if (isa::is_compressed(lo)) {
    raw = lo;
    return true;
  }
  if (!fetch_parcel(h, pc + 2, hi, use_tlb)) return false;
  raw = lo | (static_cast<uint32_t>(hi) << 16);
  return true;
}

template <Path P>
inline bool fetch(Hart& h, uint64_t pc, uint32_t& raw) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_fetch[h.tlb_slot(pc)];
    if (e.tag == ((pc >> 12) | h.fetch_ctx) && (pc & kPageMask) <= 4092) [[likely]] {
      std::memcpy(&raw, reinterpret_cast<const void*>(pc + e.addend), 4);
      return true;
    }
  }
  return fetch_slow(h, pc, raw, P != Path::kRef);
}

// A host pointer for an atomic access (AMO, SC): naturally aligned, writable RAM.
template <Path P, typename T>
bool atomic_ptr(Hart& h, uint64_t va, T*& p) {
  if ((va & (sizeof(T) - 1)) != 0) {
    h.take_trap(kStoreMisaligned, va);
    return false;
  }
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_store[h.tlb_slot(va)];
    if (e.tag == ((va >> 12) | h.data_ctx)) {
      p = reinterpret_cast<T*>(va + e.addend);
      return true;
    }
  }
  Translation t;
  if (!h.translate(va, Access::kStore, sizeof(T), t)) return false;
  uint8_t* host = store_fill(h, va, t);
  if (host == nullptr) {
    h.take_trap(kStoreAccessFault, va);
    return false;
  }
  p = reinterpret_cast<T*>(host);
  return true;
}

// LR: a naturally aligned load that records a reservation.
template <Path P, typename T>
bool load_reserved(Hart& h, uint64_t va, T& out) {
  if ((va & (sizeof(T) - 1)) != 0) {
    h.take_trap(kLoadMisaligned, va);
    return false;
  }
  T* p = nullptr;
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_load[h.tlb_slot(va)];
    if (e.tag == ((va >> 12) | h.data_ctx)) p = reinterpret_cast<T*>(va + e.addend);
  }
  if (p == nullptr) {
    Translation t;
    if (!h.translate(va, Access::kLoad, sizeof(T), t)) return false;
    uint8_t* host = tlb_fill(h, h.tlb_load, h.data_ctx, va, t);
    if (host == nullptr) {
      h.take_trap(kLoadAccessFault, va);
      return false;
    }
    p = reinterpret_cast<T*>(host);
  }
  out = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  h.reservation_valid = true;
  h.reservation_addr = reinterpret_cast<uintptr_t>(p);
  h.reservation_value = static_cast<uint64_t>(out);
  return true;
}

// SC: succeeds (returns 0) only if this hart holds a reservation on the same address and
// the memory still holds the value LR read; a compare-and-swap makes it atomic against
// other harts' stores.
template <Path P, typename T>
bool store_conditional(Hart& h, uint64_t va, T value, uint64_t& result) {
  T* p;
  if (!atomic_ptr<P, T>(h, va, p)) return false;
  bool ok = false;
  if (h.reservation_valid && h.reservation_addr == reinterpret_cast<uintptr_t>(p)) {
    T expected = static_cast<T>(h.reservation_value);
    if (h.access_log != nullptr) [[unlikely]]
      log_ram_store(h, p, sizeof(T), static_cast<uint64_t>(value));
    ok =
        __atomic_compare_exchange_n(p, &expected, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    if (!ok && h.access_log != nullptr) h.access_log->stores.pop_back();
  }
  h.reservation_valid = false;
  result = ok ? 0 : 1;
  return true;
}

template <Path P, typename T, typename F>
bool amo(Hart& h, uint64_t va, T operand, uint64_t& result, F op) {
  T* p;
  if (!atomic_ptr<P, T>(h, va, p)) return false;
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, op(old, operand), true, __ATOMIC_SEQ_CST,
                                      __ATOMIC_RELAXED)) {
  }
  if (h.access_log != nullptr) [[unlikely]] {
    h.access_log->stores.push_back({reinterpret_cast<uintptr_t>(p), static_cast<uint64_t>(old),
                                    static_cast<uint64_t>(op(old, operand)), sizeof(T), false});
  }
  // .W results are sign-extended to 64 bits.
  result = static_cast<uint64_t>(static_cast<int64_t>(static_cast<std::make_signed_t<T>>(old)));
  return true;
}

// ---- floating-point register access ----
inline uint32_t f32(const Hart& h, unsigned r) {
  uint64_t v = h.f[r];
  return (v >> 32) == 0xffffffffu ? static_cast<uint32_t>(v) : fpu::kCanonicalNaN32;
}
inline void set_f32(Hart& h, unsigned r, uint32_t v) {
  h.f[r] = 0xffffffff00000000ull | v;
  h.mark_fs_dirty();
}
inline void set_f64(Hart& h, unsigned r, uint64_t v) {
  h.f[r] = v;
  h.mark_fs_dirty();
}
inline void accrue(Hart& h, uint32_t flags) {
  if (flags != 0) {
    h.fflags |= flags;
    h.mark_fs_dirty();
  }
}

inline int64_t sext32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

inline void illegal(Hart& h, const Decoded& d) { h.take_trap(kIllegalInsn, d.raw); }

inline uint64_t div_s64(int64_t a, int64_t b) {
  if (b == 0) return ~0ULL;
  if (a == INT64_MIN && b == -1) return static_cast<uint64_t>(a);
  return static_cast<uint64_t>(a / b);
}
inline uint64_t rem_s64(int64_t a, int64_t b) {
  if (b == 0) return static_cast<uint64_t>(a);
  if (a == INT64_MIN && b == -1) return 0;
  return static_cast<uint64_t>(a % b);
}

// The run loops advance cycle/instret before an instruction's body (so that a CSR write to
// mcycle/minstret is done instead of that increment), but a CSR instruction must read the
// counter's value from before its own execution.
inline uint64_t counter_before_insn(const Decoded& d, uint64_t value) {
  const unsigned csr = static_cast<unsigned>(d.imm) & 0xFFF;
  return csr == 0xC00 || csr == 0xC02 || csr == 0xB00 || csr == 0xB02 ? value - 1 : value;
}

template <Path P>
[[gnu::always_inline]] inline void execute(Hart& h, const Decoded& d, const uint64_t pc) {
  uint64_t* x = h.x;
// Each body's kind must be the one its table row's class calls for.
#define BODY_IS(name, kind) static_assert(isa::body_of(isa::class_of(Op::name)) == isa::Body::kind)
#define OP(name) \
  case Op::name: \
    BODY_IS(name, kOp);
#define OPM(name) \
  case Op::name:  \
    BODY_IS(name, kMem);
#define OPX(name) \
  case Op::name:  \
    BODY_IS(name, kX);
#define NEXT return
#define MEM_NEXT return
#define DONE return
#define PC pc
#define BRANCH(cond)                \
  do {                              \
    if (cond) h.next_pc = pc + IMM; \
    return;                         \
  } while (0)
  switch (d.op) {
#include "cpu/interp_ops.inc"
    default:
      // The decoder only produces the ops above: lets the jump table go without a range
      // check.
      __builtin_unreachable();
  }
#undef OP
#undef OPM
#undef OPX
#undef NEXT
#undef MEM_NEXT
#undef DONE
#undef PC
#undef BRANCH
#undef BODY_IS
}
// One line per retired instruction, in the shape of Spike's commit log plus the
// disassembly: core, privilege, pc, bits, disassembly, then every register it changed.
void trace_line(Hart& h, std::FILE* out, Priv priv, uint64_t pc, const Decoded& d,
                const uint64_t (&xb)[32], const uint64_t (&fb)[32]) {
  std::fprintf(out, "core %3" PRIu64 ": %u 0x%016" PRIx64 " (0x%0*x) %-28s", h.hartid,
               static_cast<unsigned>(priv), pc, d.len == 2 ? 4 : 8, d.raw,
               isa::disassemble(d, pc).c_str());
  for (unsigned r = 1; r < 32; r++) {
    if (h.x[r] != xb[r]) std::fprintf(out, " x%-2u 0x%016" PRIx64, r, h.x[r]);
  }
  for (unsigned r = 0; r < 32; r++) {
    if (h.f[r] != fb[r]) std::fprintf(out, " f%-2u 0x%016" PRIx64, r, h.f[r]);
  }
  std::fputc('\n', out);
}

// A trapping instruction does not retire: say so, with the cause and where it goes.
void trace_trap(Hart& h, std::FILE* out, uint64_t pc, const Decoded& d) {
  const bool to_m = h.priv == kPrivM;
  std::fprintf(out,
               "core %3" PRIu64 ": trap at 0x%016" PRIx64 " (%s): %s cause 0x%" PRIx64
               " tval 0x%" PRIx64 " -> 0x%016" PRIx64 "\n",
               h.hartid, pc, isa::disassemble(d, pc).c_str(), to_m ? "mcause" : "scause",
               to_m ? h.mcause : h.scause, to_m ? h.mtval : h.stval, h.next_pc);
}
// ---- the single-instruction path ----

constexpr uint64_t kChunk = 8192;

// Fetches, decodes and runs the instruction at h.pc, counting it. Used for tracing, at
// the end of an instruction budget, on a fetch TLB miss and where no block can be built.
// Returns false on a fetch fault (then h.pc is the handler and nothing was counted).
template <Path P, bool kTrace>
bool step_one(Hart& h, Decoded& d) {
  uint32_t raw;
  if (!fetch<P>(h, h.pc, raw)) [[unlikely]] {
    if constexpr (kTrace) {
      std::fprintf(h.trace_out,
                   "core %3" PRIu64 ": fetch fault at 0x%016" PRIx64 " -> 0x%016" PRIx64 "\n",
                   h.hartid, h.pc, h.next_pc);
    }
    h.pc = h.next_pc;  // the fetch fault's handler
    return false;
  }
  // A 16-bit instruction is decoded (and reported in tval) as its own bits only.
  if (isa::is_compressed(raw)) raw &= 0xffff;
  d = isa::decode(raw);
  h.next_pc = h.pc + d.len;
  // Counted before the body so that a CSR write to minstret/mcycle is what the next
  // instruction reads.
  ++h.instret;
  ++h.cycle;
  if constexpr (kTrace) {
    uint64_t xb[32], fb[32];
    std::memcpy(xb, h.x, sizeof(xb));
    std::memcpy(fb, h.f, sizeof(fb));
    const Priv priv = h.priv;
    const uint64_t traps = h.trap_count;
    execute<P>(h, d, h.pc);
    h.x[0] = 0;
    if (h.trap_count == traps) {
      trace_line(h, h.trace_out, priv, h.pc, d, xb, fb);
    } else {
      trace_trap(h, h.trace_out, h.pc, d);
    }
  } else {
    execute<P>(h, d, h.pc);
    h.x[0] = 0;
  }
  if (d.op == Op::fence_i) jit::invalidate_chains();
  h.pc = h.next_pc;
  return true;
}

uint64_t run_trace(Hart& h, uint64_t max_insns) {
  h.update_tlb_context();
  uint64_t done = 0;
  while (done < max_insns) {
    if (h.stop_requested.load(std::memory_order_relaxed)) break;
    if (h.check_interrupts()) h.pc = h.next_pc;
    if (h.waiting) {
      if (!h.interrupt_wakeup_pending()) break;
      h.waiting = false;
    }
    h.break_block = false;
    const uint64_t n = std::min(max_insns - done, kChunk);
    uint64_t i = 0;
    while (i < n) {
      Decoded d;
      step_one<Path::kFast, true>(h, d);
      ++i;  // a faulting fetch is a step of the budget
      if (h.break_block) break;
    }
    done += i;
  }
  return done;
}

// ---- predecoded blocks ----

constexpr unsigned kMaxBlockInsns = 64;  // a block also ends after isa::ends_block

// The threaded loop's handler table (label addresses in run_blocks): one entry per Op
// (Op::count included), then these two.
constexpr unsigned kHandlerEnd = static_cast<unsigned>(Op::count) + 1;  // after a block
constexpr unsigned kHandlerNop = kHandlerEnd + 1;                       // rd = x0, no effect
constexpr unsigned kHandlerFenceI = kHandlerNop + 1;  // FENCE.I: also drops chained jumps
constexpr unsigned kHandlerCount = kHandlerFenceI + 1;

struct Block;

// One instruction of a block: the address of its body in the threaded loop, its decoded
// fields, its offset from the block's first byte (its pc is the block's plus that), and
// the chained successor of the exit it makes (see run_blocks): for a conditional branch
// its taken target, for the slot after the last instruction the block's successor when
// it runs to its end (fall-through or the last jump's target). When the block is compiled
// and that exit is chainable in its native code, `stub` locates the exit's stub there
// (jit::ChainSite), else 0.
struct Slot {
  const void* handler;
  Decoded d;
  uint16_t off;
  uint16_t stub;
  Block* link;
};
static_assert(sizeof(Slot) == 40);

// A run of decoded instructions inside one page, straight-line except for conditional
// branches (their fall-through path), followed in memory by its slots (plus one whose
// handler ends the block) and a copy of the code bytes it was decoded from.
struct Block {
  uintptr_t key;    // host address of the first instruction (host memory is physical)
  uint32_t nbytes;  // code bytes covered
  uint32_t ninsns;

  const uint8_t* copy;      // the code bytes, after the slots
  jit::NativeBlock native;  // compiled code (JIT engine only), or nullptr
  Block* chain;             // the next block in this one's table bucket
  uint32_t heat;            // entries so far (the JIT compiles at its threshold)
  uint32_t chain_entry;     // where chained exits of other blocks enter `native`
  uint32_t verified;        // the chain epoch (low half) when its bytes were last found
                            // current on the way into it (compiled JALR exits' probe)
  uint32_t plain;           // compile without entry assumptions (one failed: kExitGuard)

  const Slot* slots() const { return reinterpret_cast<const Slot*>(this + 1); }
  Slot* slots() { return reinterpret_cast<Slot*>(this + 1); }
  const uint8_t* code() const { return copy; }

  // True if memory still holds the bytes this block was decoded from. This check on every
  // entry is what keeps blocks right when code is rewritten behind the hart's back.
  // nbytes is even and at least 2; the last word read overlaps the one before it.
  bool current() const {
    const uint8_t* m = reinterpret_cast<const uint8_t*>(key);
    const uint8_t* c = code();
    const uint32_t n = nbytes;
#if defined(__SSE2__)
    if (n >= 16) [[likely]] {
      // First and last 16 bytes (overlapping when n < 32), then the ones between.
      __m128i eq = _mm_and_si128(_mm_cmpeq_epi8(load16(m), load16(c)),
                                 _mm_cmpeq_epi8(load16(m + n - 16), load16(c + n - 16)));
      for (uint32_t o = 16; o + 16 < n; o += 16)
        eq = _mm_and_si128(eq, _mm_cmpeq_epi8(load16(m + o), load16(c + o)));
      return _mm_movemask_epi8(eq) == 0xffff;
    }
#endif
    if (n >= 8) [[likely]] {
      // First and last words (overlapping when n < 16), then the ones between.
      uint64_t diff = (load8(m) ^ load8(c)) | (load8(m + n - 8) ^ load8(c + n - 8));
      for (uint32_t o = 8; o + 8 < n; o += 8) diff |= load8(m + o) ^ load8(c + o);
      return diff == 0;
    }
    if (n >= 4) {
      return ((load4(m) ^ load4(c)) | (load4(m + n - 4) ^ load4(c + n - 4))) == 0;
    }
    uint16_t a, b;
    std::memcpy(&a, m, 2);
    std::memcpy(&b, c, 2);
    return a == b;
  }

 private:
#if defined(__SSE2__)
  static __m128i load16(const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  }
#endif
  static uint64_t load8(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint32_t load4(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
};
static_assert(sizeof(Block) % alignof(Slot) == 0);

// One hart's blocks: a hash table by host address (chained in the blocks) over a bump arena that is
// emptied when full. No locks: each hart runs on one thread.
class CodeCache {
 public:
  CodeCache() {
    // Anonymous memory in 2 MiB pages where the host allows it: a boot fills megabytes of
    // blocks once, which would otherwise be thousands of first-touch page faults.
    constexpr size_t kHuge = 2u << 20;
    map_len_ = kArenaBytes + kHuge;
    map_ = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_ == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t base = (reinterpret_cast<uintptr_t>(map_) + kHuge - 1) & ~uintptr_t{kHuge - 1};
    arena_ = reinterpret_cast<uint8_t*>(base);
#ifdef MADV_HUGEPAGE
    madvise(arena_, kArenaBytes, MADV_HUGEPAGE);
#endif
    flush();
  }
  ~CodeCache() { munmap(map_, map_len_); }
  CodeCache(const CodeCache&) = delete;
  CodeCache& operator=(const CodeCache&) = delete;

  // The threaded loop's label addresses (kHandlerCount entries), which blocks store; set
  // by run_blocks before it looks anything up.
  void set_handlers(const void* const* handlers) { handlers_ = handlers; }

  void flush() {
    std::fill(std::begin(table_), std::end(table_), nullptr);
    used_ = 0;
    ++generation_;
    epoch_high_ = jit::chain_epoch() >> 32;
    if (jit_) jit_->reset();
    shared_ = {};
    jit_full_ = false;
  }

  // flush(), and gives the arenas' memory back to the host.
  void release() {
    flush();
    madvise(arena_, kArenaBytes, MADV_DONTNEED);
    if (jit_) jit_->release();
  }
  // Blocks compiled since the cache was made.
  uint64_t compiled() const { return compiled_; }
  // Bytes of blocks decoded since the last flush.
  size_t used() const { return used_; }

  // Gives this cache a JIT: blocks entered `hot_threshold` times are compiled. False
  // (and no JIT) when the host cannot have one.
  bool enable_jit(unsigned hot_threshold, bool log_stores = false) {
    log_stores_ = log_stores;
#if defined(__x86_64__)
    jit_ = std::make_unique<jit::CodeArena>(kJitArenaBytes);
    if (!jit_->ok()) jit_.reset();
#endif
    hot_ = hot_threshold;
    return jit_ != nullptr;
  }
  unsigned hot_threshold() const { return hot_; }

  // Compiles `b` (its native code lives as long as the block does). False if the JIT
  // does not take it; a full code arena empties the whole cache at the next build.
  bool compile(Block* b, Hart& h);

  // Compiles `b` again without entry assumptions (one of them failed). Chained exits into
  // its old code are dropped (they link to the new code as they are taken again).
  void recompile_plain(Block* b, Hart& h) {
    b->plain = 1;
    b->native = nullptr;
    Slot* const slots = b->slots();
    for (unsigned i = 0; i <= b->ninsns; i++) slots[i].stub = 0;
    jit::invalidate_chains();
    compile(b, h);
  }

  // Changes whenever the arena is emptied (every Block pointer held so far is dead).
  uint64_t generation() const { return generation_; }

  // Points the chainable exit of `from` at slot `sl` (its native stub) at the compiled
  // block `to`, found current at the exit's target `host` while the chain epoch was
  // `epoch`.
  void link(const Block* from, const Slot* sl, const Block* to, uintptr_t host, bool cross_page,
            uint64_t epoch) {
    const unsigned idx = static_cast<unsigned>(sl - from->slots());
    const unsigned retired = idx == from->ninsns ? idx : idx + 1;
    // A JALR exit checks the successor's host address wherever it is, like a cross-page
    // one, and keeps the successor it was linked to in this epoch (see link_exit). Its
    // slot is the one after the last instruction, whose decoded fields are unused: `raw`
    // remembers that epoch, which saves reading the stub.
    const bool jalr = idx == from->ninsns && sl[-1].d.op == Op::jalr;
    if (jalr) {
      if (sl->d.raw == static_cast<uint32_t>(epoch)) return;
      const_cast<Slot*>(sl)->d.raw = static_cast<uint32_t>(epoch);
    }
    jit::link_exit(*jit_, from->native, sl->stub, cross_page || jalr, to->native, to->chain_entry,
                   host, retired + to->ninsns, epoch);
  }

  // Empties the cache when the chain epoch's high half has moved since it was last
  // emptied (the stubs compare the low half only, which may then come round again).
  void check_epoch_wrap() {
    if ((jit::chain_epoch() >> 32) != epoch_high_) [[unlikely]]
      flush();
  }

  // The current block starting at host address `host`, if one was built; nullptr if not.
  Block* find(uintptr_t host) {
    for (Block* b = table_[(host >> 1) & (kSlots - 1)]; b != nullptr; b = b->chain) {
      if (b->key == host && b->current()) return b;
    }
    return nullptr;
  }

  // The current block starting at host address `host` (guest address `pc`), decoding it
  // if needed; nullptr when not even one instruction fits in the rest of the page.
  Block* get(uintptr_t host, uint64_t pc) {
    const size_t bucket = (host >> 1) & (kSlots - 1);
    Block* b = table_[bucket];
    if (b != nullptr && b->key == host && b->current()) [[likely]]
      return b;
    // Further down the bucket's chain (newest first; an older block at the same address
    // is one whose code has changed since).
    for (b = b != nullptr ? b->chain : nullptr; b != nullptr; b = b->chain) {
      if (b->key == host && b->current()) return b;
    }
    b = build(host, pc);  // may empty the cache: the table is read again below
    if (b != nullptr) {
      b->chain = table_[bucket];
      table_[bucket] = b;
    }
    return b;
  }

 private:
  // A boot of the bundled guest decodes about 30 MB of blocks in all (many entry points
  // into the same code); with 6 MiB the arena was emptied 37 times and rebuilt 250k blocks
  // (and the JIT recompiled the hot ones each time), with 16 MiB 6 times and 97k blocks.
  // What an idle VM keeps resident of it is given back by release() (see Interpreter).
  static constexpr unsigned kSlots = 1u << 15;
  static constexpr size_t kArenaBytes = 16u << 20;
  static constexpr size_t kMaxCode = kMaxBlockInsns * 4;
  static constexpr size_t kMaxBlockBytes =
      sizeof(Block) + (kMaxBlockInsns + 1) * sizeof(Slot) + kMaxCode;

  // Compiled code. Blocks are compiled only once hot, so this fills slower than the
  // block arena; it is emptied with it.
  static constexpr size_t kJitArenaBytes = 8u << 20;

  Block* build(uintptr_t host, uint64_t pc) {
    if (used_ + kMaxBlockBytes > kArenaBytes || jit_full_) flush();
    Block* b = reinterpret_cast<Block*>(arena_ + used_);
    Slot* out = b->slots();
    // Decode from a private copy, so that a concurrent writer cannot make the decoded
    // instructions and the bytes kept for the check disagree.
    uint8_t code[kMaxCode];
    const size_t avail = std::min<size_t>(kMaxCode, 4096 - (pc & kPageMask));
    std::memcpy(code, reinterpret_cast<const void*>(host), avail);
    size_t off = 0;
    unsigned n = 0;
    while (n < kMaxBlockInsns && off + 2 <= avail) {
      uint16_t lo;
      std::memcpy(&lo, code + off, 2);
      uint32_t raw = lo;
      if (!isa::is_compressed(lo)) {
        if (off + 4 > avail) break;  // crosses the page (or the copy): single-stepped
        std::memcpy(&raw, code + off, 4);
      }
      Slot& s = out[n++];
      s.d = isa::decode(raw);
      s.off = static_cast<uint16_t>(off);
      s.stub = 0;
      s.link = nullptr;
      // Which instructions are no-ops with rd = x0 and which end a block comes from their
      // table rows' class (isa/insn_class.h).
      s.handler = s.d.rd == 0 && isa::writes_only_rd(s.d.op) ? handlers_[kHandlerNop]
                  : s.d.op == Op::fence_i                    ? handlers_[kHandlerFenceI]
                                          : handlers_[static_cast<unsigned>(s.d.op)];
      off += s.d.len;
      if (isa::ends_block(s.d.op)) break;
    }
    if (n == 0) return nullptr;
    out[n] = Slot{handlers_[kHandlerEnd], Decoded{}, static_cast<uint16_t>(off), 0, nullptr};
    b->key = host;
    b->nbytes = static_cast<uint32_t>(off);
    b->ninsns = n;
    b->copy = reinterpret_cast<const uint8_t*>(out + n + 1);
    b->native = nullptr;
    b->chain = nullptr;
    b->heat = 0;
    b->chain_entry = 0;
    b->verified = 0;
    b->plain = 0;
    std::memcpy(out + n + 1, code, off);
    used_ += (sizeof(Block) + (n + 1) * sizeof(Slot) + off + 7) & ~size_t{7};
    return b;
  }

  Block* table_[kSlots];
  std::unique_ptr<jit::CodeArena> jit_;
  jit::Layout::Shared shared_;  // the arena's shared code (emitted before its first block)
  bool jit_full_ = false;
  bool log_stores_ = false;  // compiled stores take the slow path (kCheckJit)
  unsigned hot_ = 0;
  uint64_t compiled_ = 0;

  void* map_ = nullptr;
  size_t map_len_ = 0;
  uint8_t* arena_ = nullptr;
  const void* const* handlers_ = nullptr;
  size_t used_ = 0;
  uint64_t generation_ = 0;
  uint64_t epoch_high_ = 0;
};

// ---- the JIT's view of the interpreter ----

// Compiled F/D code runs with the guest's rounding mode in the host's MXCSR and its flags
// accruing there (jit::Compiler::fp_setup sets it up and Hart::jit_fp_live). When the
// run returns, the flags go into fflags (and mstatus.FS is Dirty when any were raised, as
// the interpreter's accrue does) and the host's own MXCSR comes back.
constexpr uint32_t kHostMxcsr = 0x1f80;  // round to nearest, every exception masked
void jit_fp_fold(Hart& h) {
#if defined(__x86_64__)
  uint32_t mx = 0;
  asm volatile("stmxcsr %0" : "=m"(mx));
  uint32_t host = kHostMxcsr;
  asm volatile("ldmxcsr %0" : : "m"(host));
  const uint32_t fl = fpu::mxcsr_flags(mx);
  if (fl != 0) {
    h.fflags |= fl;
    h.mark_fs_dirty();
  }
#endif
  h.jit_fp_live = 0;
}

// Host code called from compiled code (the slow paths) runs with the host's MXCSR, so
// neither its rounding nor its flags mix with the guest's.
class HostMxcsr {
 public:
  explicit HostMxcsr(const Hart& h) : live_(h.jit_fp_live != 0) {
#if defined(__x86_64__)
    if (live_) {
      uint32_t host = kHostMxcsr;
      asm volatile("stmxcsr %0\n\tldmxcsr %1" : "=m"(saved_) : "m"(host));
    }
#endif
  }
  ~HostMxcsr() {
#if defined(__x86_64__)
    if (live_) asm volatile("ldmxcsr %0" : : "m"(saved_));
#endif
  }
  HostMxcsr(const HostMxcsr&) = delete;
  HostMxcsr& operator=(const HostMxcsr&) = delete;

 private:
  bool live_;
  uint32_t saved_ = 0;
};

// The slow paths of compiled loads and stores (the same as the interpreter's).
jit::LoadResult jit_load_slow(Hart* h, uint64_t va, uint64_t pc, uint64_t kind) {
  const HostMxcsr host_fp(*h);
  h->pc = pc;
  const unsigned size = kind & 0xff;
  uint64_t v;
  if (!load_slow(*h, va, size, v)) return {0, 0};
  if ((kind & 0x100) != 0 && size < 8) {
    const unsigned shift = 64 - 8 * size;
    v = static_cast<uint64_t>(static_cast<int64_t>(v << shift) >> shift);
  }
  return {v, 1};
}

uint64_t jit_store_slow(Hart* h, uint64_t va, uint64_t value, uint64_t pc, uint64_t size) {
  const HostMxcsr host_fp(*h);
  h->pc = pc;
  if (size < 8) value &= (uint64_t{1} << (8 * size)) - 1;
  return store_slow(*h, va, static_cast<unsigned>(size), value) ? 1 : 0;
}

constexpr jit::SlowPaths kJitSlowPaths{&jit_load_slow, &jit_store_slow};

// With NIMBUS_PERF_MAP set, every compiled block is named in /tmp/perf-PID.map (the
// format `perf report` reads for JIT code) by the guest address it was compiled at.
static void perf_map_note(const jit::Compiled& c, uint64_t pc, size_t arena_offset) {
  static FILE* const map = [] {
    if (std::getenv("NIMBUS_PERF_MAP") == nullptr) return static_cast<FILE*>(nullptr);
    char path[64];
    std::snprintf(path, sizeof(path), "/tmp/perf-%d.map", static_cast<int>(getpid()));
    return std::fopen(path, "a");
  }();
  if (map == nullptr) return;
  std::fprintf(map, "%lx %x jit_%llx\n", reinterpret_cast<unsigned long>(c.code), c.size,
               static_cast<unsigned long long>(pc));
  std::fflush(map);
  // NIMBUS_PERF_MAP=dump: the code too, as /tmp/nimbus-jit-MEMFDOFFSET-GUESTPC.bin (for
  // objdump -D -b binary -mi386:x86-64).
  if (std::strcmp(std::getenv("NIMBUS_PERF_MAP"), "dump") == 0) {
    char path[96];
    std::snprintf(path, sizeof(path), "/tmp/nimbus-jit-%06zx-%llx.bin", arena_offset,
                  static_cast<unsigned long long>(pc));
    if (FILE* f = std::fopen(path, "wb")) {
      std::fwrite(reinterpret_cast<const void*>(c.code), 1, c.size, f);
      std::fclose(f);
    }
  }
}

bool CodeCache::compile(Block* b, Hart& h) {
  if (!jit_) return false;
  jit::Insn insns[kMaxBlockInsns];
  const Slot* sl = b->slots();
  for (unsigned i = 0; i < b->ninsns; i++) insns[i] = jit::Insn{sl[i].d, sl[i].off};
  bool full = false;
  jit::Compiled out;
  jit::Layout layout = jit::layout_of(h);
  layout.table.blocks = reinterpret_cast<const void* const*>(table_);
  layout.table.mask = kSlots - 1;
  layout.table.key = offsetof(Block, key);
  layout.table.ninsns = offsetof(Block, ninsns);
  layout.table.native = offsetof(Block, native);
  layout.table.chain_entry = offsetof(Block, chain_entry);
  layout.table.verified = offsetof(Block, verified);
  layout.log_stores = log_stores_;
  if (shared_.exit == 0) {  // the arena's shared code comes first after each reset
    shared_ = jit::emit_shared(*jit_, layout);
    if (shared_.exit == 0) {
      jit_full_ = true;
      return false;
    }
  }
  layout.shared = shared_;
  jit::compile_block(insns, b->ninsns, b, static_cast<uint32_t>(b->key & kPageMask), b->nbytes,
                     layout, kJitSlowPaths, *jit_, full, out, b->plain != 0 ? nullptr : h.x);
  if (full) jit_full_ = true;
  if (out.code == nullptr) return false;
  b->native = out.code;
  b->chain_entry = out.chain_entry;
  Slot* const slots = b->slots();
  for (unsigned i = 0; i < out.nsites; i++)
    slots[out.sites[i].slot].stub = static_cast<uint16_t>(out.sites[i].stub);
  compiled_++;
  perf_map_note(out, h.pc, jit_->offset_of(reinterpret_cast<const void*>(out.code)));
  return true;
}

class Checker;

// The run loop. Between chunks of about kChunk instructions (or sooner when an instruction
// sets break_block) it checks interrupts and the stop flag. Counters advance once per
// block and are corrected when a side exit or a trap leaves a block early.
template <Path P, bool kJit = false>
uint64_t run_blocks(Hart& h, CodeCache& cache, uint64_t max_insns, Checker* checker);

// ---- the reference checker ----

// One step of the reference path: fetch through translate() (no TLB), decode afresh,
// run the body with TLB-free memory accesses.
void ref_step(Hart& r) {
  uint32_t raw;
  if (!fetch<Path::kRef>(r, r.pc, raw)) {
    r.pc = r.next_pc;
    return;
  }
  if (isa::is_compressed(raw)) raw &= 0xffff;
  const Decoded d = isa::decode(raw);
  r.next_pc = r.pc + d.len;
  ++r.instret;
  ++r.cycle;
  execute<Path::kRef>(r, d, r.pc);
  r.x[0] = 0;
  r.pc = r.next_pc;
}

// clang-format off
#define NIMBUS_HART_SCALARS(X)                                                           \
  X(priv) X(mstatus_) X(misa_) X(medeleg) X(mideleg) X(mie) X(mtvec) X(stvec) X(mscratch) \
  X(sscratch) X(mepc) X(sepc) X(mcause) X(scause) X(mtval) X(stval) X(mcounteren)          \
  X(scounteren) X(mcountinhibit) X(menvcfg) X(senvcfg) X(satp) X(fflags) X(frm)            \
  X(reservation_valid) X(reservation_addr) X(reservation_value) X(waiting)
// clang-format on

// Runs a shadow hart on the reference path in lockstep with the fast path: after each
// instruction of the fast path its stores are undone, the shadow executes the same
// instruction, and registers, CSRs and stores are compared.
class Checker {
 public:
  explicit Checker(Hart& h) : h_(h), ref_(h.bus, h.hartid) {
    ref_.set_engine(EngineKind::kInterpreter);
    hlog_.stores.reserve(64);
    hlog_.mmio.reserve(16);
    rlog_.stores.reserve(64);
    rlog_.mmio.reserve(16);
    rlog_.replay = true;
  }

  AccessLog* log() { return &hlog_; }

  // The shadow takes over the fast path's whole state (at chunk starts: interrupts are
  // taken outside instructions).
  void sync() {
    std::memcpy(ref_.x, h_.x, sizeof(h_.x));
    std::memcpy(ref_.f, h_.f, sizeof(h_.f));
    std::memcpy(ref_.pmpcfg, h_.pmpcfg, sizeof(h_.pmpcfg));
    std::memcpy(ref_.pmpaddr, h_.pmpaddr, sizeof(h_.pmpaddr));
    ref_.pc = h_.pc;
    ref_.cycle = h_.cycle;
    ref_.instret = h_.instret;
#define X(field) ref_.field = h_.field;
    NIMBUS_HART_SCALARS(X)
#undef X
    ref_.mip.store(h_.mip.load(std::memory_order_relaxed), std::memory_order_relaxed);
    ref_.time_source = h_.time_source;
    if (h_.sbi_handler) {
      // The firmware call ran once, on the fast path: the shadow takes its results.
      ref_.sbi_handler = [this](Hart& r) {
        std::memcpy(r.x, h_.x, sizeof(r.x));
        r.mip.store(h_.mip.load(std::memory_order_relaxed), std::memory_order_relaxed);
      };
    } else {
      ref_.sbi_handler = nullptr;
    }
    hlog_.clear();
  }

  // Called after the fast path ran the instruction at `pc` (`d` null after a fetch fault).
  // `arch_pc` is where the fast path goes next and `unretired` how many of the counted
  // instructions of its block have not run yet. False (and the hart stopped) at a
  // difference.
  bool after(const Decoded* d, uint64_t pc, uint64_t arch_pc, uint64_t unretired) {
    begin_reference();
    ref_step(ref_);
    ref_.access_log = nullptr;
    return compare(arch_pc, unretired, [&] {
      std::string insn = "(fetch fault)";
      if (d != nullptr)
        insn = fmt::format("({:#0{}x} {})", d->raw, d->len == 2 ? 6 : 10, isa::disassemble(*d, pc));
      return fmt::format("at pc {:#018x} {}", pc, insn);
    });
  }

  // Called after a run of compiled code entered at `bpc` (kCheckJit): the reference path
  // runs as many instructions as it retired, then the two are compared as after() does.
  bool after_native(uint64_t bpc, uint64_t arch_pc, uint64_t unretired) {
    begin_reference();
    const uint64_t target = h_.instret - unretired;
    uint64_t steps = 0;
    // (A bound in case the counts disagree: the comparison reports it.)
    while (ref_.instret < target && steps < kMaxNativeSteps && rlog_.problem.empty()) {
      ref_step(ref_);
      ++steps;
    }
    ref_.access_log = nullptr;
    return compare(arch_pc, unretired, [&] {
      return fmt::format(
          "in compiled code entered at pc {:#018x}, which ran {} instructions to pc {:#018x}", bpc,
          steps, arch_pc);
    });
  }

  // The most instructions one run of compiled code may retire under kCheckJit
  // (Hart::jit_loop_limit), and the reference path's bound.
  static constexpr uint64_t kNativeWindow = 1024;
  static constexpr uint64_t kMaxNativeSteps = kNativeWindow + 2 * kMaxBlockInsns;

 private:
  // Device-driven interrupt bits: other threads may raise them at any time, so the
  // reference path takes the fast path's and they are not compared.
  static constexpr uint64_t kDeviceIrqs = (1u << kIrqMSoft) | (1u << kIrqSTimer) |
                                          (1u << kIrqMTimer) | (1u << kIrqSExt) | (1u << kIrqMExt);

  // Undoes the fast path's stores since the last check and points the reference path at
  // the device reads to replay.
  void begin_reference() {
    for (auto it = hlog_.stores.rbegin(); it != hlog_.stores.rend(); ++it) {
      if (!it->mmio) std::memcpy(reinterpret_cast<void*>(it->host), &it->old_value, it->size);
    }
    rlog_.clear();
    rlog_.mmio = hlog_.mmio;
    rlog_.times = hlog_.times;
    const uint64_t mip = ref_.mip.load(std::memory_order_relaxed);
    ref_.mip.store((mip & ~kDeviceIrqs) | (h_.mip.load(std::memory_order_relaxed) & kDeviceIrqs),
                   std::memory_order_relaxed);
    ref_.access_log = &rlog_;
    ref_.break_block = false;
  }

  // Compares the fast path (at `arch_pc`, `unretired` counted instructions of its block
  // still to run) with the reference path; `where` describes what ran.
  template <typename Where>
  bool compare(uint64_t arch_pc, uint64_t unretired, Where where) {
    std::string diff = rlog_.problem.empty() ? std::string() : "  " + rlog_.problem + "\n";
    auto cmp = [&](const char* name, uint64_t fast, uint64_t ref) {
      if (fast != ref)
        diff += fmt::format("  {}: fast path {:#x}, reference {:#x}\n", name, fast, ref);
    };
    auto cmp_array = [&](const char* name, unsigned first, unsigned count, auto* fast, auto* ref) {
      for (unsigned i = first; i < count; i++) {
        if (fast[i] != ref[i]) {
          diff +=
              fmt::format("  {}{}: fast path {:#x}, reference {:#x}\n", name, i, fast[i], ref[i]);
        }
      }
    };
    cmp("pc", arch_pc, ref_.pc);
    cmp_array("x", 1, 32, h_.x, ref_.x);
    cmp_array("f", 0, 32, h_.f, ref_.f);
    cmp_array("pmpcfg", 0, 16, h_.pmpcfg, ref_.pmpcfg);
    cmp_array("pmpaddr", 0, 16, h_.pmpaddr, ref_.pmpaddr);
    cmp("instret", h_.instret - unretired, ref_.instret);
    cmp("cycle", h_.cycle - unretired, ref_.cycle);
    cmp("mip", h_.mip.load(std::memory_order_relaxed) & ~kDeviceIrqs,
        ref_.mip.load(std::memory_order_relaxed) & ~kDeviceIrqs);
#define X(field) cmp(#field, static_cast<uint64_t>(h_.field), static_cast<uint64_t>(ref_.field));
    NIMBUS_HART_SCALARS(X)
#undef X
    if (hlog_.stores.size() != rlog_.stores.size()) {
      diff += fmt::format("  stores: fast path {}, reference {}\n", hlog_.stores.size(),
                          rlog_.stores.size());
    } else {
      for (size_t i = 0; i < hlog_.stores.size(); i++) {
        const AccessLog::Store &a = hlog_.stores[i], &b = rlog_.stores[i];
        if (a.host != b.host || a.size != b.size || a.value != b.value || a.mmio != b.mmio) {
          diff += fmt::format(
              "  store {}: fast path {} bytes of {:#x} at {}{:#x}, reference {} bytes of {:#x} at "
              "{}{:#x}\n",
              i, a.size, a.value, a.mmio ? "device " : "host ", a.host, b.size, b.value,
              b.mmio ? "device " : "host ", b.host);
        }
      }
    }
    hlog_.clear();
    if (diff.empty()) return true;

    const std::string report = fmt::format(
        "check-reference: hart {} diverged from the reference path {} (instruction {} of this "
        "run):\n{}",
        h_.hartid, where(), ref_.instret, diff);
    h_.diverged = true;
    h_.stop_requested = true;
    if (h_.on_divergence) {
      h_.on_divergence(report);
    } else {
      std::fprintf(stderr, "nimbus: %s", report.c_str());
      std::exit(1);
    }
    return false;
  }

  Hart& h_;
  Hart ref_;
  AccessLog hlog_, rlog_;
};

#undef NIMBUS_HART_SCALARS

template <Path P, bool kJit>
uint64_t run_blocks(Hart& h, CodeCache& cache, uint64_t max_insns, Checker* checker) {
  static_assert(P != Path::kRef, "the reference path runs one instruction at a time");
  // The bodies of interp_ops.inc as labels; a block's slots hold these addresses.
  static const void* const kHandlers[] = {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) &&L_##name,
#include "cpu/isa/instructions.inc"
      &&L_illegal, &&L_count, &&L_end, &&L_nop, &&L_fence_i_chain};
  static_assert(std::size(kHandlers) == kHandlerCount);
  cache.set_handlers(kHandlers);
  h.update_tlb_context();

  uint64_t* const x = h.x;
  // Budget: `left` instructions may still run in this call; the chunk ends (interrupts
  // and the stop flag are looked at again) once `left` is down to `chunk_stop`.
  uint64_t left = max_insns;
  uint64_t chunk_stop = 0;
  Block* blk = nullptr;      // the block running
  const Slot* sl = nullptr;  // the instruction running
  uint64_t bpc = 0;          // guest address of blk's first instruction
  const unsigned hot = cache.hot_threshold();

// Enters `blk` at bpc (nullptr, or a block longer than the budget: one step instead).
// Counters advance by the whole block here (so a CSR read inside it sees its own count
// exactly: CSR instructions end blocks) and are given back for what a side exit or a trap
// skips. Only the last instruction of a block (a jump, a system instruction), taken
// branches and traps set or read next_pc; the others go on to the next slot.
#define ENTER_BLOCK()                                               \
  do {                                                              \
    if (blk == nullptr || blk->ninsns > left) [[unlikely]]          \
      goto step;                                                    \
    h.instret += blk->ninsns;                                       \
    h.cycle += blk->ninsns;                                         \
    h.next_pc = bpc + blk->nbytes;                                  \
    sl = blk->slots();                                              \
    if constexpr (kJit) {                                           \
      if (blk->native != nullptr) goto native;                      \
      if (++blk->heat == hot && cache.compile(blk, h)) goto native; \
    }                                                               \
    goto * sl->handler;                                             \
  } while (0)

// Leaves the block through the exit of slot `sl` (the slot after the last instruction:
// the block ran to its end; a conditional branch: taken) once `left` has been charged,
// and goes on to the block at next_pc. Within a chunk neither translation nor privilege
// changes (whatever changes them sets break_block, which ends the chunk), so a successor
// in the same page has its host address at the same distance as its guest address, and
// one in another page goes through the fetch TLB. The exit's link saves the table lookup
// while it names a current block at that host address (a link is only a hint: its key is
// compared and its bytes are checked like on any other entry). When the exit was made by
// compiled code and the successor is compiled too, the exit's native stub is pointed at
// it (CodeCache::link), so next time compiled code goes on there without coming back.
#define CHAIN()                                                                               \
  do {                                                                                        \
    const uint64_t pc_ = h.next_pc;                                                           \
    h.pc = pc_;                                                                               \
    if (left <= chunk_stop) goto chunk;                                                       \
    uintptr_t host_;                                                                          \
    if (((pc_ ^ bpc) >> 12) == 0) [[likely]] {                                                \
      host_ = blk->key + (pc_ - bpc);                                                         \
    } else {                                                                                  \
      const TlbEntry& e_ = h.tlb_fetch[h.tlb_slot(pc_)];                                      \
      if (e_.tag != ((pc_ >> 12) | h.fetch_ctx)) [[unlikely]]                                 \
        goto lookup;                                                                          \
      host_ = pc_ + e_.addend;                                                                \
    }                                                                                         \
    /* read before next_'s bytes are checked: a link made below is only as fresh */           \
    const uint64_t epoch_ = kJit ? jit::chain_epoch() : 0;                                    \
    Block* next_ = sl->link;                                                                  \
    bool alive_ = true; /* blk, sl */                                                         \
    if (next_ == nullptr || next_->key != host_ || !next_->current()) [[unlikely]] {          \
      const uint64_t gen_ = cache.generation();                                               \
      next_ = cache.get(host_, pc_);                                                          \
      alive_ = cache.generation() == gen_; /* else blk died with the arena */                 \
      if (alive_) const_cast<Slot*>(sl)->link = next_;                                        \
    }                                                                                         \
    /* a compiled exit to a compiled block: chain them in native code */                      \
    if (kJit && alive_ && next_ != nullptr && next_->native != nullptr) {                     \
      next_->verified = static_cast<uint32_t>(epoch_);                                        \
      if (sl->stub != 0) cache.link(blk, sl, next_, host_, ((pc_ ^ bpc) >> 12) != 0, epoch_); \
    }                                                                                         \
    blk = next_;                                                                              \
    bpc = pc_;                                                                                \
    ENTER_BLOCK();                                                                            \
  } while (0)

chunk:
  if (left == 0 || h.stop_requested.load(std::memory_order_relaxed)) return max_insns - left;
  if (h.check_interrupts()) h.pc = h.next_pc;
  if (h.waiting) {
    if (!h.interrupt_wakeup_pending()) return max_insns - left;
    h.waiting = false;
  }
  if constexpr (P == Path::kChecked) checker->sync();
  if constexpr (kJit) cache.check_epoch_wrap();
  h.break_block = false;
  chunk_stop = left > kChunk ? left - kChunk : 0;

lookup:
  // The block at h.pc, with no predecessor to follow: its page must be in the fetch TLB
  // (a miss goes through step_one, which fills the TLB or takes the fault).
  bpc = h.pc;
  blk = nullptr;
  {
    const TlbEntry& e = h.tlb_fetch[h.tlb_slot(bpc)];
    if (e.tag == ((bpc >> 12) | h.fetch_ctx)) [[likely]]
      blk = cache.get(bpc + e.addend, bpc);
  }
  ENTER_BLOCK();

tail_lookup:
  // After a single step in the run's last few instructions, fewer than a block may hold:
  // a block that exists and fits runs (compiled, mostly), else another single step.
  // Building one here would build a new block at every pc the steps go through.
  bpc = h.pc;
  blk = nullptr;
  {
    const TlbEntry& e = h.tlb_fetch[h.tlb_slot(bpc)];
    if (e.tag == ((bpc >> 12) | h.fetch_ctx)) [[likely]]
      blk = cache.find(bpc + e.addend);
  }
  ENTER_BLOCK();

step :  // one instruction through the single-instruction path
{
  Decoded one;
  const bool fetched = step_one<P, false>(h, one);
  --left;  // a faulting fetch is a step of the budget
  if constexpr (P == Path::kChecked) {
    if (!checker->after(fetched ? &one : nullptr, bpc, h.pc, 0)) return max_insns - left;
  }
}
  if (h.break_block || left <= chunk_stop) goto chunk;
  if (left < kMaxBlockInsns) goto tail_lookup;
  goto lookup;

  // ---- the bodies ----
  // Each ends by jumping to the next slot's handler; a body that may trap or end the
  // chunk first looks at break_block. OPX bodies set h.pc first (traps and the slow paths
  // read it); loads and stores (OPM) only on their slow path.
#define PC (bpc + sl->off)
#define d (sl->d)
// Under --check-reference every instruction is compared with the reference path
// (`next` is where the fast path goes after it).
#define CHECK_AFTER(next)                                             \
  if constexpr (P == Path::kChecked) {                                \
    x[0] = 0;                                                         \
    const unsigned i_ = static_cast<unsigned>(sl - blk->slots()) + 1; \
    const unsigned left_ = blk->ninsns - i_;                          \
    if (!checker->after(&d, PC, next, left_)) {                       \
      h.instret -= left_;                                             \
      h.cycle -= left_;                                               \
      return max_insns - left + i_;                                   \
    }                                                                 \
  }
#define OP(name) L_##name:
#define OPM(name) L_##name:
#define OPX(name) L_##name : h.pc = PC;
#define NEXT                                                                                     \
  do {                                                                                           \
    CHECK_AFTER(h.break_block || sl + 1 == blk->slots() + blk->ninsns ? h.next_pc : PC + d.len); \
    ++sl;                                                                                        \
    goto * sl->handler;                                                                          \
  } while (0)
#define DONE                                                                                     \
  do {                                                                                           \
    x[0] = 0;                                                                                    \
    CHECK_AFTER(h.break_block || sl + 1 == blk->slots() + blk->ninsns ? h.next_pc : PC + d.len); \
    if (h.break_block) [[unlikely]]                                                              \
      goto block_break;                                                                          \
    ++sl;                                                                                        \
    goto * sl->handler;                                                                          \
  } while (0)
#define MEM_NEXT \
  do {           \
    x[0] = 0;    \
    NEXT;        \
  } while (0)
#define BRANCH(cond)          \
  do {                        \
    if (cond) {               \
      h.next_pc = PC + IMM;   \
      CHECK_AFTER(h.next_pc); \
      goto taken;             \
    }                         \
    NEXT;                     \
  } while (0)
#include "cpu/interp_ops.inc"
L_nop:
  NEXT;
L_fence_i_chain:  // FENCE.I (any engine: the epoch is global), then its usual body
  jit::invalidate_chains();
  goto L_fence_i;
#undef OP
#undef OPM
#undef OPX
#undef NEXT
#undef MEM_NEXT
#undef DONE
#undef BRANCH
#undef CHECK_AFTER
#undef d
#undef PC

L_end:       // the block ran to its end (sl is the slot after its last instruction)
  x[0] = 0;  // a jump's link register may have been x0
  left -= blk->ninsns;
  CHAIN();

taken :  // the conditional branch at sl was taken
{
  const unsigned ran = static_cast<unsigned>(sl - blk->slots()) + 1;
  if (ran != blk->ninsns) {  // a side exit: the rest of the block did not retire
    h.instret -= blk->ninsns - ran;
    h.cycle -= blk->ninsns - ran;
  }
  left -= ran;
}
  CHAIN();

native:  // blk has compiled code: run it, then continue where it left off
  __attribute__((unused));
  if constexpr (kJit) {
    // Its native loops and chained exits may go on to a block (itself, or another
    // compiled one) while the whole of it fits in the chunk and the budget.
    h.jit_loop_limit = left - chunk_stop;
    if constexpr (P == Path::kChecked)
      h.jit_loop_limit = std::min<uint64_t>(h.jit_loop_limit, Checker::kNativeWindow);
    jit::ChainOut out;
    const uint32_t r = blk->native(&h, bpc, &out);
    if (h.jit_fp_live != 0) [[unlikely]]
      jit_fp_fold(h);
    const uint64_t looped = h.jit_loop_done;
    // It may return from a block it reached through chained exits (possibly this one
    // again, even at another guest address mapping the same code): count as if the block
    // loop had entered that one (the ones before it are in `looped`).
    [[maybe_unused]] const uint64_t entered = bpc;
    Block* const last = static_cast<Block*>(const_cast<void*>(out.block));
    if (last != blk) {
      h.instret = h.instret - blk->ninsns + last->ninsns;
      h.cycle = h.cycle - blk->ninsns + last->ninsns;
      blk = last;
    }
    bpc = out.bpc;
    h.instret += looped;
    h.cycle += looped;
    left -= looped;
    sl = blk->slots() + (r & 0xffff);
    if constexpr (P == Path::kChecked) {
      // Where the run left the guest: the instructions of `blk` before the exit's slot have
      // run (and the slot's own, for a taken branch or a trap), next_pc holds the target of
      // any exit but one to the next instruction in the block.
      const unsigned idx = r & 0xffff;
      const bool at_slot = (r >> 16) == jit::kExitContinue || (r >> 16) == jit::kExitGuard;
      const uint64_t unretired = blk->ninsns - idx - (at_slot ? 0 : 1);
      const uint64_t arch_pc = at_slot && idx < blk->ninsns ? bpc + sl->off : h.next_pc;
      if (!checker->after_native(entered, arch_pc, unretired)) {
        h.instret -= unretired;
        h.cycle -= unretired;
        return max_insns - left + (blk->ninsns - unretired);
      }
    }
    switch (r >> 16) {
      case jit::kExitContinue:
        goto * sl->handler;
      case jit::kExitGuard:
        cache.recompile_plain(blk, h);
        goto * sl->handler;
      case jit::kExitTaken:
        goto taken;
      default:
        goto block_break;
    }
  }

block_break :  // the instruction at sl trapped or ends the chunk
{
  const unsigned ran = static_cast<unsigned>(sl - blk->slots()) + 1;
  if (ran != blk->ninsns) [[unlikely]] {  // left early by a trap: the rest did not retire
    h.instret -= blk->ninsns - ran;
    h.cycle -= blk->ninsns - ran;
  }
  left -= ran;
  h.pc = h.next_pc;
}
  goto chunk;
#undef CHAIN
#undef ENTER_BLOCK
}

class Interpreter final : public ExecutionEngine {
 public:
  explicit Interpreter(bool jit) : jit_(jit && cache_.enable_jit(jit_hot_threshold())) {}
  uint64_t run(Hart& h, uint64_t max_insns) override {
    if (h.trace_out != nullptr) [[unlikely]]
      return run_trace(h, max_insns);
    const uint64_t done = jit_ ? run_blocks<Path::kFast, true>(h, cache_, max_insns, nullptr)
                               : run_blocks<Path::kFast>(h, cache_, max_insns, nullptr);
    window_insns_ += done;
    if (h.waiting) idle_check();
    return done;
  }
  void flush() override { cache_.flush(); }
  uint64_t compiled_blocks() const override { return cache_.compiled(); }

 private:
  // An idle VM gives back its decoded and compiled code. A boot leaves ~15 MB of blocks
  // and host code behind that an idle guest (timer ticks, the idle loop) does not need;
  // many idle VMs per host is the common case. Looked at only when the hart goes to WFI:
  // once a window of kIdleWindow has retired fewer than kIdleInsns instructions, the
  // caches are emptied and their memory returned (rebuilt on demand when work comes).
  static constexpr auto kIdleWindow = std::chrono::seconds(2);
  static constexpr uint64_t kIdleInsns = 20'000'000;
  static constexpr size_t kReleaseAbove = 1u << 20;

  void idle_check() {
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start_ < kIdleWindow) return;
    if (window_insns_ < kIdleInsns && cache_.used() > kReleaseAbove) cache_.release();
    window_start_ = now;
    window_insns_ = 0;
  }

  CodeCache cache_;
  const bool jit_;
  std::chrono::steady_clock::time_point window_start_ = std::chrono::steady_clock::now();
  uint64_t window_insns_ = 0;
};

// kCheckReference, and with `jit` kCheckJit: compiled code logs every store (its stores
// take the slow path) and each run of it is checked as a whole.
class CheckedInterpreter final : public ExecutionEngine {
 public:
  explicit CheckedInterpreter(bool jit)
      : jit_(jit && cache_.enable_jit(jit_hot_threshold(), /*log_stores=*/true)) {}
  uint64_t run(Hart& h, uint64_t max_insns) override {
    if (h.diverged) return 0;
    if (!checker_) checker_ = std::make_unique<Checker>(h);
    h.access_log = checker_->log();
    const uint64_t done =
        jit_ ? run_blocks<Path::kChecked, true>(h, cache_, max_insns, checker_.get())
             : run_blocks<Path::kChecked>(h, cache_, max_insns, checker_.get());
    h.access_log = nullptr;
    return done;
  }
  void flush() override { cache_.flush(); }
  uint64_t compiled_blocks() const override { return cache_.compiled(); }

 private:
  CodeCache cache_;
  const bool jit_;
  std::unique_ptr<Checker> checker_;
};

}  // namespace

namespace {
// Low enough that loops are compiled within their first iterations, high enough that code
// run once during a boot (most of it) is never compiled.
std::atomic<unsigned> g_jit_hot_threshold{16};
}  // namespace

void fence_i_all_harts() { jit::invalidate_chains(); }

void set_jit_hot_threshold(unsigned entries) {
  g_jit_hot_threshold.store(entries < 1 ? 1 : entries);
}
unsigned jit_hot_threshold() { return g_jit_hot_threshold.load(); }

std::unique_ptr<ExecutionEngine> make_engine(EngineKind kind) {
  switch (kind) {
    case EngineKind::kCheckReference:
      return std::make_unique<CheckedInterpreter>(false);
    case EngineKind::kCheckJit:
      return std::make_unique<CheckedInterpreter>(true);
    case EngineKind::kJit:
      return std::make_unique<Interpreter>(true);
    case EngineKind::kInterpreter:
      break;
  }
  return std::make_unique<Interpreter>(false);
}

}  // namespace nimbus::cpu
