#include "cpu/hart.h"

#include <cstring>

namespace nimbus::cpu {

namespace {
// misa: MXL=2 (64-bit) and the extensions this hart implements: A C D F I M S U.
constexpr uint64_t misa_value() {
  uint64_t v = 2ULL << 62;
  for (char c : {'A', 'C', 'D', 'F', 'I', 'M', 'S', 'U'}) v |= 1ULL << (c - 'A');
  return v;
}
}  // namespace

namespace {
std::atomic<EngineKind> g_default_engine{EngineKind::kInterpreter};
}  // namespace

void Hart::set_default_engine(EngineKind kind) { g_default_engine.store(kind); }
EngineKind Hart::default_engine() { return g_default_engine.load(); }

Hart::Hart(mem::Bus& bus_, uint64_t id)
    : hartid(id), bus(bus_), engine(make_engine(g_default_engine.load())) {
  reset(0);
}

Hart::~Hart() = default;

void Hart::set_engine(EngineKind kind) {
  engine = make_engine(kind);
  diverged = false;
}

uint64_t Hart::run(uint64_t max_insns) { return engine->run(*this, max_insns); }

void Hart::reset(uint64_t reset_pc) {
  std::memset(x, 0, sizeof(x));
  std::memset(f, 0, sizeof(f));
  pc = next_pc = reset_pc;
  priv = kPrivM;
  // Priv spec 3.1.6: MIE and MPRV reset to 0; SXL/UXL report 64-bit.
  mstatus_ = (2ULL << 32) | (2ULL << 34);
  misa_ = misa_value();
  medeleg = mideleg = mie = 0;
  mip.store(0);
  mtvec = stvec = mscratch = sscratch = mepc = sepc = 0;
  mcause = scause = mtval = stval = 0;
  mcounteren = scounteren = mcountinhibit = 0;
  menvcfg = senvcfg = satp = 0;
  fflags = frm = 0;
  cycle = instret = 0;
  std::memset(pmpcfg, 0, sizeof(pmpcfg));
  std::memset(pmpaddr, 0, sizeof(pmpaddr));
  reservation_valid = false;
  waiting = false;
  break_block = false;
  update_tlb_context();
  flush_all_caches();
}

void Hart::flush_all_caches() {
  tlb_flush();
  if (engine) engine->flush();
}

void Hart::set_interrupt_pending(unsigned irq, bool level) {
  if (level) {
    mip.fetch_or(1ULL << irq, std::memory_order_relaxed);
  } else {
    mip.fetch_and(~(1ULL << irq), std::memory_order_relaxed);
  }
}

}  // namespace nimbus::cpu
