// The interpreter. Guest code runs as predecoded blocks: straight-line runs of decoded
// instructions within one 4 KiB page, cached per hart by host (= physical) address and
// checked against the bytes in memory each time they are entered, so writes to code by
// anyone (this hart, another hart, a device's DMA) are seen without any invalidation
// protocol. Loads, stores and fetches go through software TLBs that map a virtual page
// straight to a host pointer. Every instruction has one body, in execute() below, shared
// by the fast path and by the plain reference path of the --check-reference engine.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/fpu.h"
#include "cpu/hart.h"
#include "cpu/isa/decode.h"
#include "cpu/isa/disasm.h"

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
  size_t mmio_pos = 0;
  bool replay = false;  // the reference side: device accesses come from `mmio`
  std::string problem;  // set by the replaying side when it cannot follow the recording

  void clear() {
    stores.clear();
    mmio.clear();
    mmio_pos = 0;
    problem.clear();
  }
};

namespace {

// kFast: TLB fast paths. kChecked: the same, recording stores in the hart's AccessLog.
// kRef: the reference path, which never reads a TLB (every access is translated).
enum class Path { kFast, kChecked, kRef };

constexpr uint64_t kPageMask = 0xfff;

inline unsigned tlb_index(uint64_t va) { return (va >> 12) & (kTlbSize - 1); }

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
    TlbEntry& e = tlb[tlb_index(va)];
    e.tag = (va >> 12) | ctx;
    e.addend = reinterpret_cast<uintptr_t>(host_page) - (va & ~kPageMask);
    h.tlb_has_superpage |= t.superpage;
  }
  return host_page + (t.paddr & kPageMask);
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
    // Check every byte's translation before writing any, so a fault leaves memory as it was.
    for (unsigned i = 0; i < size; i++) {
      Translation t;
      if (!h.translate(va + i, Access::kStore, 1, t)) return false;
    }
    for (unsigned i = 0; i < size; i++) {
      if (!store_slow(h, va + i, 1, (value >> (8 * i)) & 0xff)) return false;
    }
    return true;
  }
  Translation t;
  if (!h.translate(va, Access::kStore, size, t)) return false;
  if (uint8_t* host = tlb_fill(h, h.tlb_store, h.data_ctx, va, t)) {
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

template <Path P, typename T>
inline bool load(Hart& h, uint64_t va, T& out) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_load[tlb_index(va)];
    if (e.tag == ((va >> 12) | h.data_ctx) && (va & kPageMask) <= 4096 - sizeof(T)) [[likely]] {
      std::memcpy(&out, reinterpret_cast<const void*>(va + e.addend), sizeof(T));
      return true;
    }
  }
  uint64_t v;
  if (!load_slow(h, va, sizeof(T), v)) return false;
  out = static_cast<T>(v);
  return true;
}

template <Path P, typename T>
inline bool store(Hart& h, uint64_t va, T value) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_store[tlb_index(va)];
    if (e.tag == ((va >> 12) | h.data_ctx) && (va & kPageMask) <= 4096 - sizeof(T)) [[likely]] {
      void* host = reinterpret_cast<void*>(va + e.addend);
      if constexpr (P == Path::kChecked)
        log_ram_store(h, host, sizeof(T), static_cast<uint64_t>(value));
      std::memcpy(host, &value, sizeof(T));
      return true;
    }
  }
  return store_slow(h, va, sizeof(T), static_cast<uint64_t>(value));
}

// Fetches the 16-bit parcel at `va`.
bool fetch_parcel(Hart& h, uint64_t va, uint16_t& out) {
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

bool fetch_slow(Hart& h, uint64_t pc, uint32_t& raw) {
  uint16_t lo, hi;
  if (!fetch_parcel(h, pc, lo)) return false;
  if (isa::is_compressed(lo)) {
    raw = lo;
    return true;
  }
  if (!fetch_parcel(h, pc + 2, hi)) return false;
  raw = lo | (static_cast<uint32_t>(hi) << 16);
  return true;
}

template <Path P>
inline bool fetch(Hart& h, uint64_t pc, uint32_t& raw) {
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_fetch[tlb_index(pc)];
    if (e.tag == ((pc >> 12) | h.fetch_ctx) && (pc & kPageMask) <= 4092) [[likely]] {
      std::memcpy(&raw, reinterpret_cast<const void*>(pc + e.addend), 4);
      return true;
    }
  }
  return fetch_slow(h, pc, raw);
}

// A host pointer for an atomic access (AMO, SC): naturally aligned, writable RAM.
template <Path P, typename T>
bool atomic_ptr(Hart& h, uint64_t va, T*& p) {
  if ((va & (sizeof(T) - 1)) != 0) {
    h.take_trap(kStoreMisaligned, va);
    return false;
  }
  if constexpr (P != Path::kRef) {
    const TlbEntry& e = h.tlb_store[tlb_index(va)];
    if (e.tag == ((va >> 12) | h.data_ctx)) {
      p = reinterpret_cast<T*>(va + e.addend);
      return true;
    }
  }
  Translation t;
  if (!h.translate(va, Access::kStore, sizeof(T), t)) return false;
  uint8_t* host = tlb_fill(h, h.tlb_store, h.data_ctx, va, t);
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
    const TlbEntry& e = h.tlb_load[tlb_index(va)];
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
    ok = __atomic_compare_exchange_n(p, &expected, value, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
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
#define RS1 x[d.rs1]
#define RS2 x[d.rs2]
#define RD x[d.rd]
#define IMM static_cast<uint64_t>(d.imm)
#define ADDR (RS1 + IMM)
// FP instructions are illegal while mstatus.FS is Off.
#define FP_GUARD          \
  if (!h.fs_enabled()) {  \
    illegal(h, d);        \
    return;               \
  }
// Resolves the rounding mode (rm field, or frm when dynamic); reserved modes are illegal.
#define FP_RM                                    \
  FP_GUARD;                                      \
  const uint32_t rm = d.rm == 7 ? h.frm : d.rm;  \
  if (rm > 4) {                                  \
    illegal(h, d);                               \
    return;                                      \
  }                                              \
  uint32_t fl = 0
#define LOAD(T, conv)                      \
  {                                        \
    T v;                                   \
    if (load<P, T>(h, ADDR, v)) RD = conv; \
    return;                                \
  }
#define AMO_W(expr)                                                                \
  {                                                                                \
    uint64_t r;                                                                    \
    if (amo<P, uint32_t>(h, RS1, static_cast<uint32_t>(RS2), r,                    \
                         [](uint32_t a, uint32_t b) -> uint32_t { return expr; })) \
      RD = r;                                                                      \
    return;                                                                        \
  }
#define AMO_D(expr)                                                                                \
  {                                                                                                \
    uint64_t r;                                                                                    \
    if (amo<P, uint64_t>(h, RS1, RS2, r, [](uint64_t a, uint64_t b) -> uint64_t { return expr; })) \
      RD = r;                                                                                      \
    return;                                                                                        \
  }
#define FBIN_S(fn)                                      \
  {                                                     \
    FP_RM;                                              \
    uint32_t r = fpu::fn(f32(h, d.rs1), f32(h, d.rs2), rm, fl); \
    set_f32(h, d.rd, r);                                \
    accrue(h, fl);                                      \
    return;                                             \
  }
#define FBIN_D(fn)                                      \
  {                                                     \
    FP_RM;                                              \
    uint64_t r = fpu::fn(h.f[d.rs1], h.f[d.rs2], rm, fl); \
    set_f64(h, d.rd, r);                                \
    accrue(h, fl);                                      \
    return;                                             \
  }
#define FMA_S(fn)                                                            \
  {                                                                          \
    FP_RM;                                                                   \
    uint32_t r = fpu::fn(f32(h, d.rs1), f32(h, d.rs2), f32(h, d.rs3), rm, fl); \
    set_f32(h, d.rd, r);                                                     \
    accrue(h, fl);                                                           \
    return;                                                                  \
  }
#define FMA_D(fn)                                                         \
  {                                                                       \
    FP_RM;                                                                \
    uint64_t r = fpu::fn(h.f[d.rs1], h.f[d.rs2], h.f[d.rs3], rm, fl);     \
    set_f64(h, d.rd, r);                                                  \
    accrue(h, fl);                                                        \
    return;                                                               \
  }
// FP -> integer register, with a rounding mode.
#define FCVT_TO_X(fn, src)             \
  {                                    \
    FP_RM;                             \
    uint64_t r = fpu::fn(src, rm, fl); \
    RD = r;                            \
    accrue(h, fl);                     \
    return;                            \
  }
#define FCMP(fn, a, b)                \
  {                                   \
    FP_GUARD;                         \
    uint32_t fl = 0;                  \
    uint64_t r = fpu::fn(a, b, fl);   \
    RD = r;                           \
    accrue(h, fl);                    \
    return;                           \
  }
#define FMINMAX_S(fn)                                       \
  {                                                         \
    FP_GUARD;                                               \
    uint32_t fl = 0;                                        \
    set_f32(h, d.rd, fpu::fn(f32(h, d.rs1), f32(h, d.rs2), fl)); \
    accrue(h, fl);                                          \
    return;                                                 \
  }
#define FMINMAX_D(fn)                                    \
  {                                                      \
    FP_GUARD;                                            \
    uint32_t fl = 0;                                     \
    set_f64(h, d.rd, fpu::fn(h.f[d.rs1], h.f[d.rs2], fl)); \
    accrue(h, fl);                                       \
    return;                                              \
  }
#define SGNJ_S(expr)                                  \
  {                                                   \
    FP_GUARD;                                         \
    uint32_t a = f32(h, d.rs1), b = f32(h, d.rs2);    \
    set_f32(h, d.rd, (a & 0x7fffffffu) | ((expr) & 0x80000000u)); \
    return;                                           \
  }
#define SGNJ_D(expr)                                  \
  {                                                   \
    FP_GUARD;                                         \
    uint64_t a = h.f[d.rs1], b = h.f[d.rs2];          \
    set_f64(h, d.rd, (a & ~(1ULL << 63)) | ((expr) & (1ULL << 63))); \
    return;                                           \
  }

  switch (d.op) {
    // ---- RV64I ----
    case Op::lui: RD = IMM; return;
    case Op::auipc: RD = pc + IMM; return;
    case Op::jal:
      RD = pc + d.len;
      h.next_pc = pc + IMM;
      return;
    case Op::jalr: {
      uint64_t target = ADDR & ~1ULL;
      RD = pc + d.len;
      h.next_pc = target;
      return;
    }
    case Op::beq: if (RS1 == RS2) h.next_pc = pc + IMM; return;
    case Op::bne: if (RS1 != RS2) h.next_pc = pc + IMM; return;
    case Op::blt: if (static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2)) h.next_pc = pc + IMM; return;
    case Op::bge: if (static_cast<int64_t>(RS1) >= static_cast<int64_t>(RS2)) h.next_pc = pc + IMM; return;
    case Op::bltu: if (RS1 < RS2) h.next_pc = pc + IMM; return;
    case Op::bgeu: if (RS1 >= RS2) h.next_pc = pc + IMM; return;
    case Op::lb: LOAD(int8_t, static_cast<uint64_t>(static_cast<int64_t>(v)))
    case Op::lh: LOAD(int16_t, static_cast<uint64_t>(static_cast<int64_t>(v)))
    case Op::lw: LOAD(int32_t, static_cast<uint64_t>(static_cast<int64_t>(v)))
    case Op::ld: LOAD(uint64_t, v)
    case Op::lbu: LOAD(uint8_t, v)
    case Op::lhu: LOAD(uint16_t, v)
    case Op::lwu: LOAD(uint32_t, v)
    case Op::sb:
      store<P, uint8_t>(h, ADDR, static_cast<uint8_t>(RS2));
      return;
    case Op::sh:
      store<P, uint16_t>(h, ADDR, static_cast<uint16_t>(RS2));
      return;
    case Op::sw:
      store<P, uint32_t>(h, ADDR, static_cast<uint32_t>(RS2));
      return;
    case Op::sd:
      store<P, uint64_t>(h, ADDR, RS2);
      return;
    case Op::addi: RD = RS1 + IMM; return;
    case Op::slti: RD = static_cast<int64_t>(RS1) < d.imm; return;
    case Op::sltiu: RD = RS1 < IMM; return;
    case Op::xori: RD = RS1 ^ IMM; return;
    case Op::ori: RD = RS1 | IMM; return;
    case Op::andi: RD = RS1 & IMM; return;
    case Op::slli: RD = RS1 << d.imm; return;
    case Op::srli: RD = RS1 >> d.imm; return;
    case Op::srai: RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> d.imm); return;
    case Op::add: RD = RS1 + RS2; return;
    case Op::sub: RD = RS1 - RS2; return;
    case Op::sll: RD = RS1 << (RS2 & 63); return;
    case Op::slt: RD = static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2); return;
    case Op::sltu: RD = RS1 < RS2; return;
    case Op::xor_: RD = RS1 ^ RS2; return;
    case Op::srl: RD = RS1 >> (RS2 & 63); return;
    case Op::sra: RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> (RS2 & 63)); return;
    case Op::or_: RD = RS1 | RS2; return;
    case Op::and_: RD = RS1 & RS2; return;
    case Op::addiw: RD = sext32(RS1 + IMM); return;
    case Op::slliw: RD = sext32(RS1 << (d.imm & 31)); return;
    case Op::srliw: RD = sext32(static_cast<uint32_t>(RS1) >> (d.imm & 31)); return;
    case Op::sraiw: RD = static_cast<uint64_t>(sext32(RS1) >> (d.imm & 31)); return;
    case Op::addw: RD = sext32(RS1 + RS2); return;
    case Op::subw: RD = sext32(RS1 - RS2); return;
    case Op::sllw: RD = sext32(RS1 << (RS2 & 31)); return;
    case Op::srlw: RD = sext32(static_cast<uint32_t>(RS1) >> (RS2 & 31)); return;
    case Op::sraw: RD = static_cast<uint64_t>(sext32(RS1) >> (RS2 & 31)); return;
    case Op::fence: return;
    case Op::fence_i:
      return;  // ends its block; blocks are validated against memory on entry
    case Op::ecall:
      if (h.priv == kPrivS && h.sbi_handler) [[unlikely]] {
        h.sbi_handler(h);
        h.break_block = true;  // the call may have changed pending interrupts
        return;
      }
      h.take_trap(h.priv == kPrivU ? kEcallFromU : h.priv == kPrivS ? kEcallFromS : kEcallFromM, 0);
      return;
    case Op::ebreak: h.take_trap(kBreakpoint, pc); return;

    // ---- Zicsr ----
    case Op::csrrw:
    case Op::csrrwi: {
      const uint64_t src = d.op == Op::csrrw ? RS1 : d.rs1;
      uint64_t old = 0;
      // CSRRW with rd=x0 does not read the CSR (no read side effects).
      if (d.rd != 0 && !h.csr_read(static_cast<unsigned>(d.imm), old)) return illegal(h, d);
      old = counter_before_insn(d, old);
      if (!h.csr_write(static_cast<unsigned>(d.imm), src)) return illegal(h, d);
      RD = old;
      return;
    }
    case Op::csrrs:
    case Op::csrrc:
    case Op::csrrsi:
    case Op::csrrci: {
      const bool imm_form = d.op == Op::csrrsi || d.op == Op::csrrci;
      const uint64_t src = imm_form ? d.rs1 : RS1;
      uint64_t old;
      if (!h.csr_read(static_cast<unsigned>(d.imm), old)) return illegal(h, d);
      old = counter_before_insn(d, old);
      // With rs1=x0 (or uimm=0) the CSR is not written at all.
      if (d.rs1 != 0) {
        const bool set = d.op == Op::csrrs || d.op == Op::csrrsi;
        if (!h.csr_write(static_cast<unsigned>(d.imm), set ? old | src : old & ~src)) {
          return illegal(h, d);
        }
      }
      RD = old;
      return;
    }

    // ---- privileged ----
    case Op::sret: if (!h.sret()) illegal(h, d); return;
    case Op::mret: if (!h.mret()) illegal(h, d); return;
    case Op::wfi:
      if (!h.wfi_allowed()) return illegal(h, d);
      if (!h.interrupt_wakeup_pending()) {
        h.waiting = true;
        h.break_block = true;
      }
      return;
    case Op::sfence_vma:
      if (!h.sfence_allowed()) return illegal(h, d);
      h.sfence_vma(d.rs1 != 0, RS1);
      h.break_block = true;
      return;

    // ---- M ----
    case Op::mul: RD = RS1 * RS2; return;
    case Op::mulh:
      RD = static_cast<uint64_t>((static_cast<__int128>(static_cast<int64_t>(RS1)) *
                                  static_cast<int64_t>(RS2)) >> 64);
      return;
    case Op::mulhsu:
      RD = static_cast<uint64_t>((static_cast<__int128>(static_cast<int64_t>(RS1)) *
                                  static_cast<__int128>(RS2)) >> 64);
      return;
    case Op::mulhu:
      RD = static_cast<uint64_t>((static_cast<unsigned __int128>(RS1) * RS2) >> 64);
      return;
    case Op::div: RD = div_s64(static_cast<int64_t>(RS1), static_cast<int64_t>(RS2)); return;
    case Op::divu: RD = RS2 == 0 ? ~0ULL : RS1 / RS2; return;
    case Op::rem: RD = rem_s64(static_cast<int64_t>(RS1), static_cast<int64_t>(RS2)); return;
    case Op::remu: RD = RS2 == 0 ? RS1 : RS1 % RS2; return;
    case Op::mulw: RD = sext32(RS1 * RS2); return;
    case Op::divw: RD = sext32(div_s64(sext32(RS1), sext32(RS2))); return;
    case Op::divuw: {
      uint32_t a = static_cast<uint32_t>(RS1), b = static_cast<uint32_t>(RS2);
      RD = sext32(b == 0 ? ~0u : a / b);
      return;
    }
    case Op::remw: RD = sext32(rem_s64(sext32(RS1), sext32(RS2))); return;
    case Op::remuw: {
      uint32_t a = static_cast<uint32_t>(RS1), b = static_cast<uint32_t>(RS2);
      RD = sext32(b == 0 ? a : a % b);
      return;
    }

    // ---- A ----
    case Op::lr_w: {
      int32_t v;
      if (load_reserved<P, int32_t>(h, RS1, v)) RD = static_cast<uint64_t>(static_cast<int64_t>(v));
      return;
    }
    case Op::lr_d: {
      uint64_t v;
      if (load_reserved<P, uint64_t>(h, RS1, v)) RD = v;
      return;
    }
    case Op::sc_w: {
      uint64_t r;
      if (store_conditional<P, uint32_t>(h, RS1, static_cast<uint32_t>(RS2), r)) RD = r;
      return;
    }
    case Op::sc_d: {
      uint64_t r;
      if (store_conditional<P, uint64_t>(h, RS1, RS2, r)) RD = r;
      return;
    }
    case Op::amoswap_w: AMO_W(b)
    case Op::amoadd_w: AMO_W(a + b)
    case Op::amoxor_w: AMO_W(a ^ b)
    case Op::amoand_w: AMO_W(a & b)
    case Op::amoor_w: AMO_W(a | b)
    case Op::amomin_w: AMO_W(static_cast<int32_t>(a) < static_cast<int32_t>(b) ? a : b)
    case Op::amomax_w: AMO_W(static_cast<int32_t>(a) > static_cast<int32_t>(b) ? a : b)
    case Op::amominu_w: AMO_W(a < b ? a : b)
    case Op::amomaxu_w: AMO_W(a > b ? a : b)
    case Op::amoswap_d: AMO_D(b)
    case Op::amoadd_d: AMO_D(a + b)
    case Op::amoxor_d: AMO_D(a ^ b)
    case Op::amoand_d: AMO_D(a & b)
    case Op::amoor_d: AMO_D(a | b)
    case Op::amomin_d: AMO_D(static_cast<int64_t>(a) < static_cast<int64_t>(b) ? a : b)
    case Op::amomax_d: AMO_D(static_cast<int64_t>(a) > static_cast<int64_t>(b) ? a : b)
    case Op::amominu_d: AMO_D(a < b ? a : b)
    case Op::amomaxu_d: AMO_D(a > b ? a : b)

    // ---- F ----
    case Op::flw: {
      FP_GUARD;
      uint32_t v;
      if (load<P, uint32_t>(h, ADDR, v)) set_f32(h, d.rd, v);
      return;
    }
    case Op::fsw:
      FP_GUARD;
      store<P, uint32_t>(h, ADDR, static_cast<uint32_t>(h.f[d.rs2]));
      return;
    case Op::fmadd_s: FMA_S(fmadd_s)
    case Op::fmsub_s: FMA_S(fmsub_s)
    case Op::fnmsub_s: FMA_S(fnmsub_s)
    case Op::fnmadd_s: FMA_S(fnmadd_s)
    case Op::fadd_s: FBIN_S(add_s)
    case Op::fsub_s: FBIN_S(sub_s)
    case Op::fmul_s: FBIN_S(mul_s)
    case Op::fdiv_s: FBIN_S(div_s)
    case Op::fsqrt_s: {
      FP_RM;
      set_f32(h, d.rd, fpu::sqrt_s(f32(h, d.rs1), rm, fl));
      accrue(h, fl);
      return;
    }
    case Op::fsgnj_s: SGNJ_S(b)
    case Op::fsgnjn_s: SGNJ_S(~b)
    case Op::fsgnjx_s: SGNJ_S(a ^ b)
    case Op::fmin_s: FMINMAX_S(min_s)
    case Op::fmax_s: FMINMAX_S(max_s)
    case Op::fcvt_w_s: FCVT_TO_X(cvt_w_s, f32(h, d.rs1))
    case Op::fcvt_wu_s: FCVT_TO_X(cvt_wu_s, f32(h, d.rs1))
    case Op::fcvt_l_s: FCVT_TO_X(cvt_l_s, f32(h, d.rs1))
    case Op::fcvt_lu_s: FCVT_TO_X(cvt_lu_s, f32(h, d.rs1))
    case Op::fmv_x_w: FP_GUARD; RD = static_cast<uint64_t>(sext32(h.f[d.rs1])); return;
    case Op::fclass_s: FP_GUARD; RD = fpu::class_s(f32(h, d.rs1)); return;
    case Op::feq_s: FCMP(eq_s, f32(h, d.rs1), f32(h, d.rs2))
    case Op::flt_s: FCMP(lt_s, f32(h, d.rs1), f32(h, d.rs2))
    case Op::fle_s: FCMP(le_s, f32(h, d.rs1), f32(h, d.rs2))
    case Op::fcvt_s_w: { FP_RM; set_f32(h, d.rd, fpu::cvt_s_w(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_s_wu: { FP_RM; set_f32(h, d.rd, fpu::cvt_s_wu(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_s_l: { FP_RM; set_f32(h, d.rd, fpu::cvt_s_l(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_s_lu: { FP_RM; set_f32(h, d.rd, fpu::cvt_s_lu(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fmv_w_x: FP_GUARD; set_f32(h, d.rd, static_cast<uint32_t>(RS1)); return;

    // ---- D ----
    case Op::fld: {
      FP_GUARD;
      uint64_t v;
      if (load<P, uint64_t>(h, ADDR, v)) set_f64(h, d.rd, v);
      return;
    }
    case Op::fsd:
      FP_GUARD;
      store<P, uint64_t>(h, ADDR, h.f[d.rs2]);
      return;
    case Op::fmadd_d: FMA_D(fmadd_d)
    case Op::fmsub_d: FMA_D(fmsub_d)
    case Op::fnmsub_d: FMA_D(fnmsub_d)
    case Op::fnmadd_d: FMA_D(fnmadd_d)
    case Op::fadd_d: FBIN_D(add_d)
    case Op::fsub_d: FBIN_D(sub_d)
    case Op::fmul_d: FBIN_D(mul_d)
    case Op::fdiv_d: FBIN_D(div_d)
    case Op::fsqrt_d: {
      FP_RM;
      set_f64(h, d.rd, fpu::sqrt_d(h.f[d.rs1], rm, fl));
      accrue(h, fl);
      return;
    }
    case Op::fsgnj_d: SGNJ_D(b)
    case Op::fsgnjn_d: SGNJ_D(~b)
    case Op::fsgnjx_d: SGNJ_D(a ^ b)
    case Op::fmin_d: FMINMAX_D(min_d)
    case Op::fmax_d: FMINMAX_D(max_d)
    case Op::fcvt_s_d: { FP_RM; set_f32(h, d.rd, fpu::cvt_s_d(h.f[d.rs1], rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_d_s: { FP_RM; set_f64(h, d.rd, fpu::cvt_d_s(f32(h, d.rs1), rm, fl)); accrue(h, fl); return; }
    case Op::feq_d: FCMP(eq_d, h.f[d.rs1], h.f[d.rs2])
    case Op::flt_d: FCMP(lt_d, h.f[d.rs1], h.f[d.rs2])
    case Op::fle_d: FCMP(le_d, h.f[d.rs1], h.f[d.rs2])
    case Op::fclass_d: FP_GUARD; RD = fpu::class_d(h.f[d.rs1]); return;
    case Op::fcvt_w_d: FCVT_TO_X(cvt_w_d, h.f[d.rs1])
    case Op::fcvt_wu_d: FCVT_TO_X(cvt_wu_d, h.f[d.rs1])
    case Op::fcvt_l_d: FCVT_TO_X(cvt_l_d, h.f[d.rs1])
    case Op::fcvt_lu_d: FCVT_TO_X(cvt_lu_d, h.f[d.rs1])
    case Op::fcvt_d_w: { FP_RM; set_f64(h, d.rd, fpu::cvt_d_w(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_d_wu: { FP_RM; set_f64(h, d.rd, fpu::cvt_d_wu(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_d_l: { FP_RM; set_f64(h, d.rd, fpu::cvt_d_l(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fcvt_d_lu: { FP_RM; set_f64(h, d.rd, fpu::cvt_d_lu(RS1, rm, fl)); accrue(h, fl); return; }
    case Op::fmv_x_d: FP_GUARD; RD = h.f[d.rs1]; return;
    case Op::fmv_d_x: FP_GUARD; set_f64(h, d.rd, RS1); return;

    // ---- Zba ----
    case Op::add_uw: RD = RS2 + static_cast<uint32_t>(RS1); return;
    case Op::sh1add: RD = RS2 + (RS1 << 1); return;
    case Op::sh2add: RD = RS2 + (RS1 << 2); return;
    case Op::sh3add: RD = RS2 + (RS1 << 3); return;
    case Op::sh1add_uw: RD = RS2 + (static_cast<uint64_t>(static_cast<uint32_t>(RS1)) << 1); return;
    case Op::sh2add_uw: RD = RS2 + (static_cast<uint64_t>(static_cast<uint32_t>(RS1)) << 2); return;
    case Op::sh3add_uw: RD = RS2 + (static_cast<uint64_t>(static_cast<uint32_t>(RS1)) << 3); return;
    case Op::slli_uw: RD = static_cast<uint64_t>(static_cast<uint32_t>(RS1)) << d.imm; return;

    // ---- Zbb ----
    case Op::andn: RD = RS1 & ~RS2; return;
    case Op::orn: RD = RS1 | ~RS2; return;
    case Op::xnor: RD = ~(RS1 ^ RS2); return;
    case Op::clz: RD = std::countl_zero(RS1); return;
    case Op::ctz: RD = std::countr_zero(RS1); return;
    case Op::cpop: RD = std::popcount(RS1); return;
    case Op::clzw: RD = std::countl_zero(static_cast<uint32_t>(RS1)); return;
    case Op::ctzw: RD = std::countr_zero(static_cast<uint32_t>(RS1)); return;
    case Op::cpopw: RD = std::popcount(static_cast<uint32_t>(RS1)); return;
    case Op::max: RD = static_cast<int64_t>(RS1) > static_cast<int64_t>(RS2) ? RS1 : RS2; return;
    case Op::maxu: RD = RS1 > RS2 ? RS1 : RS2; return;
    case Op::min: RD = static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2) ? RS1 : RS2; return;
    case Op::minu: RD = RS1 < RS2 ? RS1 : RS2; return;
    case Op::sext_b: RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(RS1))); return;
    case Op::sext_h: RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(RS1))); return;
    case Op::zext_h: RD = static_cast<uint16_t>(RS1); return;
    case Op::rol: RD = std::rotl(RS1, static_cast<int>(RS2 & 63)); return;
    case Op::ror: RD = std::rotr(RS1, static_cast<int>(RS2 & 63)); return;
    case Op::rolw: RD = sext32(std::rotl(static_cast<uint32_t>(RS1), static_cast<int>(RS2 & 31))); return;
    case Op::rorw: RD = sext32(std::rotr(static_cast<uint32_t>(RS1), static_cast<int>(RS2 & 31))); return;
    case Op::rori: RD = std::rotr(RS1, static_cast<int>(d.imm)); return;
    case Op::roriw: RD = sext32(std::rotr(static_cast<uint32_t>(RS1), static_cast<int>(d.imm & 31))); return;
    case Op::orc_b: {
      uint64_t v = RS1, r = 0;
      for (unsigned i = 0; i < 64; i += 8) {
        if ((v >> i) & 0xff) r |= 0xffULL << i;
      }
      RD = r;
      return;
    }
    case Op::rev8: RD = __builtin_bswap64(RS1); return;

    // ---- Zbs ----
    case Op::bclr: RD = RS1 & ~(1ULL << (RS2 & 63)); return;
    case Op::bclri: RD = RS1 & ~(1ULL << d.imm); return;
    case Op::bext: RD = (RS1 >> (RS2 & 63)) & 1; return;
    case Op::bexti: RD = (RS1 >> d.imm) & 1; return;
    case Op::binv: RD = RS1 ^ (1ULL << (RS2 & 63)); return;
    case Op::binvi: RD = RS1 ^ (1ULL << d.imm); return;
    case Op::bset: RD = RS1 | (1ULL << (RS2 & 63)); return;
    case Op::bseti: RD = RS1 | (1ULL << d.imm); return;

    case Op::illegal:
    case Op::count:
      illegal(h, d);
      return;
    default:
      // The decoder only produces the ops above: lets the jump table go without a range
      // check.
      __builtin_unreachable();
  }
#undef RS1
#undef RS2
#undef RD
#undef IMM
#undef ADDR
#undef FP_GUARD
#undef FP_RM
#undef LOAD
#undef AMO_W
#undef AMO_D
#undef FBIN_S
#undef FBIN_D
#undef FMA_S
#undef FMA_D
#undef FCVT_TO_X
#undef FCMP
#undef FMINMAX_S
#undef FMINMAX_D
#undef SGNJ_S
#undef SGNJ_D
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
  std::fprintf(out, "core %3" PRIu64 ": trap at 0x%016" PRIx64 " (%s): %s cause 0x%" PRIx64
               " tval 0x%" PRIx64 " -> 0x%016" PRIx64 "\n",
               h.hartid, pc, isa::disassemble(d, pc).c_str(), to_m ? "mcause" : "scause",
               to_m ? h.mcause : h.scause, to_m ? h.mtval : h.stval, h.next_pc);
}
// ---- the single-instruction path ----

constexpr uint64_t kChunk = 1024;

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

constexpr unsigned kMaxBlockInsns = 64;

// Instructions after which a block ends: control transfers, and everything that may
// change privilege, translation, interrupt enables or the counters (CSR accesses), so the
// run loop can look at interrupts again and each block keeps one translation context.
constexpr bool ends_block(Op op) {
  switch (op) {
    case Op::jal:
    case Op::jalr:
    case Op::beq:
    case Op::bne:
    case Op::blt:
    case Op::bge:
    case Op::bltu:
    case Op::bgeu:
    case Op::ecall:
    case Op::ebreak:
    case Op::fence_i:
    case Op::csrrw:
    case Op::csrrs:
    case Op::csrrc:
    case Op::csrrwi:
    case Op::csrrsi:
    case Op::csrrci:
    case Op::sret:
    case Op::mret:
    case Op::wfi:
    case Op::sfence_vma:
    case Op::illegal:
    case Op::count:
      return true;
    default:
      return false;
  }
}

// A straight-line run of decoded instructions inside one page, followed in memory by its
// Decoded array and a copy of the code bytes it was decoded from.
struct Block {
  uintptr_t key;    // host address of the first instruction (host memory is physical)
  uint32_t nbytes;  // code bytes covered
  uint32_t ninsns;

  const Decoded* insns() const { return reinterpret_cast<const Decoded*>(this + 1); }
  const uint8_t* code() const { return reinterpret_cast<const uint8_t*>(insns() + ninsns); }

  // Chained successors inside the same page (see run_blocks): [0] the fall-through,
  // [1] the last taken target. Only a hint: the target's key is compared and its bytes
  // checked like any other entry.
  Block* link[2];

  // True if memory still holds the bytes this block was decoded from. This check on every
  // entry is what keeps blocks right when code is rewritten behind the hart's back.
  // nbytes is even and at least 2; the last word read overlaps the one before it.
  bool current() const {
    const uint8_t* m = reinterpret_cast<const uint8_t*>(key);
    const uint8_t* c = code();
    const uint32_t n = nbytes;
    if (n >= 8) [[likely]] {
      uint64_t diff = load8(m + n - 8) ^ load8(c + n - 8);
      for (uint32_t o = 0; o + 8 < n; o += 8) diff |= load8(m + o) ^ load8(c + o);
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
static_assert(sizeof(Block) % alignof(Decoded) == 0);

// One hart's blocks: a direct-mapped table by host address over a bump arena that is
// emptied when full. No locks: each hart runs on one thread.
class CodeCache {
 public:
  CodeCache() : arena_(new uint8_t[kArenaBytes]) { flush(); }

  void flush() {
    std::fill(std::begin(table_), std::end(table_), nullptr);
    used_ = 0;
    ++generation_;
  }

  // Changes whenever the arena is emptied (every Block pointer held so far is dead).
  uint64_t generation() const { return generation_; }

  // The current block starting at host address `host` (guest address `pc`), decoding it
  // if needed; nullptr when not even one instruction fits in the rest of the page.
  Block* get(uintptr_t host, uint64_t pc) {
    Block*& slot = table_[(host >> 1) & (kSlots - 1)];
    Block* b = slot;
    if (b != nullptr && b->key == host && b->current()) [[likely]]
      return b;
    b = build(host, pc);
    if (b != nullptr) slot = b;
    return b;
  }

 private:
  static constexpr unsigned kSlots = 1u << 17;
  static constexpr size_t kArenaBytes = 32u << 20;
  static constexpr size_t kMaxCode = kMaxBlockInsns * 4;
  static constexpr size_t kMaxBlockBytes =
      sizeof(Block) + kMaxBlockInsns * sizeof(Decoded) + kMaxCode;

  Block* build(uintptr_t host, uint64_t pc) {
    if (used_ + kMaxBlockBytes > kArenaBytes) flush();
    Block* b = reinterpret_cast<Block*>(arena_.get() + used_);
    Decoded* out = reinterpret_cast<Decoded*>(b + 1);
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
      out[n] = isa::decode(raw);
      off += out[n].len;
      if (ends_block(out[n++].op)) break;
    }
    if (n == 0) return nullptr;
    b->key = host;
    b->nbytes = static_cast<uint32_t>(off);
    b->ninsns = n;
    b->link[0] = b->link[1] = nullptr;
    std::memcpy(out + n, code, off);
    used_ += (sizeof(Block) + n * sizeof(Decoded) + off + 7) & ~size_t{7};
    return b;
  }

  Block* table_[kSlots];
  std::unique_ptr<uint8_t[]> arena_;
  size_t used_ = 0;
  uint64_t generation_ = 0;
};

// The block for h.pc if its page is in the fetch TLB (a miss goes through step_one,
// which fills the TLB or takes the fault).
inline Block* find_block(Hart& h, CodeCache& cache) {
  const uint64_t pc = h.pc;
  const TlbEntry& e = h.tlb_fetch[tlb_index(pc)];
  if (e.tag != ((pc >> 12) | h.fetch_ctx)) [[unlikely]]
    return nullptr;
  return cache.get(pc + e.addend, pc);
}

class Checker;

// The run loop. Between chunks of about kChunk instructions (or sooner when an instruction
// sets break_block) it checks interrupts and the stop flag. Counters advance once per
// block and are corrected when a block is left early by a trap.
template <Path P>
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

#define NIMBUS_HART_SCALARS(X)                                                                 \
  X(priv)                                                                                      \
  X(mstatus_) X(misa_) X(medeleg) X(mideleg) X(mie) X(mtvec) X(stvec) X(mscratch) X(sscratch)  \
      X(mepc) X(sepc) X(mcause) X(scause) X(mtval) X(stval) X(mcounteren) X(scounteren)        \
          X(mcountinhibit) X(menvcfg) X(senvcfg) X(satp) X(fflags) X(frm) X(reservation_valid) \
              X(reservation_addr) X(reservation_value) X(waiting)

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
    for (auto it = hlog_.stores.rbegin(); it != hlog_.stores.rend(); ++it) {
      if (!it->mmio) std::memcpy(reinterpret_cast<void*>(it->host), &it->old_value, it->size);
    }
    rlog_.clear();
    rlog_.mmio = hlog_.mmio;
    ref_.access_log = &rlog_;
    ref_.break_block = false;
    ref_step(ref_);
    ref_.access_log = nullptr;

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
    cmp("mip", h_.mip.load(std::memory_order_relaxed), ref_.mip.load(std::memory_order_relaxed));
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

    std::string insn = "(fetch fault)";
    if (d != nullptr)
      insn = fmt::format("({:#0{}x} {})", d->raw, d->len == 2 ? 6 : 10, isa::disassemble(*d, pc));
    const std::string report = fmt::format(
        "check-reference: hart {} diverged from the reference path at pc {:#018x} {} "
        "(instruction {} of this run):\n{}",
        h_.hartid, pc, insn, ref_.instret, diff);
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

 private:
  Hart& h_;
  Hart ref_;
  AccessLog hlog_, rlog_;
};

#undef NIMBUS_HART_SCALARS

template <Path P>
uint64_t run_blocks(Hart& h, CodeCache& cache, uint64_t max_insns, Checker* checker) {
  h.update_tlb_context();
  uint64_t done = 0;
  while (done < max_insns) {
    if (h.stop_requested.load(std::memory_order_relaxed)) break;
    if (h.check_interrupts()) h.pc = h.next_pc;
    if (h.waiting) {
      if (!h.interrupt_wakeup_pending()) break;
      h.waiting = false;
    }
    if constexpr (P == Path::kChecked) checker->sync();
    h.break_block = false;
    const uint64_t chunk_end = std::min(max_insns, done + kChunk);
    // The block that just ran to its end (so h.pc is its successor) and where it started.
    // Only blocks ending in a branch, a jump or the block size limit are chained: the
    // instructions ending the others (CSR writes, SFENCE.VMA, traps, xRET) set break_block
    // and leave the chunk, so the fetch translation cannot change between a block and its
    // chained successor. A successor in the same page has the same translation, so its
    // host address follows from the predecessor's without the fetch TLB and the table.
    Block* prev = nullptr;
    uint64_t prev_pc = 0;
    do {
      Block* b;
      const uint64_t pc0 = h.pc;
      if (prev != nullptr && ((pc0 ^ prev_pc) >> 12) == 0) {
        const uintptr_t host = (prev->key & ~uintptr_t{kPageMask}) + (pc0 & kPageMask);
        Block*& link = prev->link[pc0 != prev_pc + prev->nbytes];
        b = link;
        if (b == nullptr || b->key != host || !b->current()) [[unlikely]] {
          const uint64_t gen = cache.generation();
          b = cache.get(host, pc0);
          if (cache.generation() == gen) link = b;  // else prev died with the arena
        }
      } else {
        b = find_block(h, cache);
      }
      if (b == nullptr || b->ninsns > max_insns - done) [[unlikely]] {
        prev = nullptr;
        Decoded d;
        const bool fetched = step_one<P, false>(h, d);
        ++done;  // a faulting fetch is a step of the budget
        if constexpr (P == Path::kChecked) {
          if (!checker->after(fetched ? &d : nullptr, pc0, h.pc, 0)) return done;
        }
        if (h.break_block) break;
        continue;
      }
      const Decoded* insn = b->insns();
      const unsigned n = b->ninsns;
      h.instret += n;
      h.cycle += n;
      uint64_t pc = pc0;
      // Only the last instruction of a block (a branch, a jump, a system instruction) and
      // traps set or read next_pc; the others go on to pc + len.
      h.next_pc = pc0 + b->nbytes;
      unsigned i = 0;
      for (;;) {
        const Decoded& d = insn[i++];
        h.pc = pc;
        execute<P>(h, d, pc);
        h.x[0] = 0;
        if constexpr (P == Path::kChecked) {
          const bool last = h.break_block || i == n;
          if (!checker->after(&d, pc, last ? h.next_pc : pc + d.len, n - i)) {
            h.instret -= n - i;
            h.cycle -= n - i;
            return done + i;
          }
        }
        if (h.break_block || i == n) break;
        pc += d.len;
      }
      if (i != n) [[unlikely]] {  // left early by a trap: the rest did not retire
        h.instret -= n - i;
        h.cycle -= n - i;
      }
      done += i;
      h.pc = h.next_pc;
      if (h.break_block) break;
      prev = b;
      prev_pc = pc0;
    } while (done < chunk_end);
  }
  return done;
}

class Interpreter final : public ExecutionEngine {
 public:
  uint64_t run(Hart& h, uint64_t max_insns) override {
    if (h.trace_out != nullptr) [[unlikely]]
      return run_trace(h, max_insns);
    return run_blocks<Path::kFast>(h, cache_, max_insns, nullptr);
  }
  void flush() override { cache_.flush(); }

 private:
  CodeCache cache_;
};

class CheckedInterpreter final : public ExecutionEngine {
 public:
  uint64_t run(Hart& h, uint64_t max_insns) override {
    if (h.diverged) return 0;
    if (!checker_) checker_ = std::make_unique<Checker>(h);
    h.access_log = checker_->log();
    const uint64_t done = run_blocks<Path::kChecked>(h, cache_, max_insns, checker_.get());
    h.access_log = nullptr;
    return done;
  }
  void flush() override { cache_.flush(); }

 private:
  CodeCache cache_;
  std::unique_ptr<Checker> checker_;
};

}  // namespace

std::unique_ptr<ExecutionEngine> make_engine(EngineKind kind) {
  switch (kind) {
    case EngineKind::kCheckReference:
      return std::make_unique<CheckedInterpreter>();
    case EngineKind::kInterpreter:
      break;
  }
  return std::make_unique<Interpreter>();
}

}  // namespace nimbus::cpu
