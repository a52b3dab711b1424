#include "cpu/hart_state.h"

namespace nimbus::cpu {

namespace {
// Bumped when the fields below change; a snapshot with another layout is refused.
constexpr uint32_t kHartStateVersion = 1;
}  // namespace

void save_hart_state(const Hart& h, StateWriter& w) {
  w.begin("hart");
  w.u32(kHartStateVersion);
  w.u64(h.hartid);
  for (uint64_t v : h.x) w.u64(v);
  for (uint64_t v : h.f) w.u64(v);
  w.u64(h.pc);
  w.u8(h.priv);
  for (uint64_t v : {h.mstatus_,      h.misa_,      h.medeleg,
                     h.mideleg,       h.mie,        h.mip.load(std::memory_order_relaxed),
                     h.mtvec,         h.stvec,      h.mscratch,
                     h.sscratch,      h.mepc,       h.sepc,
                     h.mcause,        h.scause,     h.mtval,
                     h.stval,         h.mcounteren, h.scounteren,
                     h.mcountinhibit, h.menvcfg,    h.senvcfg,
                     h.satp,          h.cycle,      h.instret}) {
    w.u64(v);
  }
  w.u32(h.fflags);
  w.u32(h.frm);
  w.bytes(h.pmpcfg, sizeof(h.pmpcfg));
  for (uint64_t v : h.pmpaddr) w.u64(v);
  // The reservation holds a host address; store it as an offset into guest RAM.
  const bool reserved =
      h.reservation_valid && h.reservation_addr >= reinterpret_cast<uintptr_t>(h.bus.ram()) &&
      h.reservation_addr - reinterpret_cast<uintptr_t>(h.bus.ram()) < h.bus.ram_size();
  w.b(reserved);
  w.u64(reserved ? h.reservation_addr - reinterpret_cast<uintptr_t>(h.bus.ram()) : 0);
  w.u64(h.reservation_value);
  w.b(h.waiting);
  w.end();
}

void load_hart_state(Hart& h, StateReader& r) {
  r.begin("hart");
  if (const uint32_t version = r.u32(); r.ok() && version != kHartStateVersion) {
    r.fail("hart state version " + std::to_string(version) + " is not supported (expected " +
           std::to_string(kHartStateVersion) + ")");
    return;
  }
  if (const uint64_t id = r.u64(); r.ok() && id != h.hartid) {
    r.fail("hart id " + std::to_string(id) + " where " + std::to_string(h.hartid) +
           " was expected");
    return;
  }
  for (uint64_t& v : h.x) v = r.u64();
  h.x[0] = 0;
  for (uint64_t& v : h.f) v = r.u64();
  h.pc = r.u64();
  const uint8_t priv = r.u8();
  if (priv != kPrivU && priv != kPrivS && priv != kPrivM)
    r.fail("invalid privilege level " + std::to_string(priv));
  h.priv = static_cast<Priv>(priv);
  uint64_t mip = 0;
  for (uint64_t* v :
       {&h.mstatus_,      &h.misa_,   &h.medeleg,  &h.mideleg,  &h.mie,        &mip,
        &h.mtvec,         &h.stvec,   &h.mscratch, &h.sscratch, &h.mepc,       &h.sepc,
        &h.mcause,        &h.scause,  &h.mtval,    &h.stval,    &h.mcounteren, &h.scounteren,
        &h.mcountinhibit, &h.menvcfg, &h.senvcfg,  &h.satp,     &h.cycle,      &h.instret}) {
    *v = r.u64();
  }
  h.mip.store(mip, std::memory_order_relaxed);
  h.fflags = r.u32();
  h.frm = r.u32();
  if (h.fflags > 0x1f) r.fail("invalid fflags");
  if (h.frm > 7) r.fail("invalid frm");
  r.bytes(h.pmpcfg, sizeof(h.pmpcfg));
  for (uint64_t& v : h.pmpaddr) v = r.u64();
  const bool reserved = r.b();
  const uint64_t offset = r.u64();
  h.reservation_value = r.u64();
  if (reserved && offset + 8 > h.bus.ram_size()) r.fail("LR/SC reservation outside guest RAM");
  h.reservation_valid = reserved && r.ok();
  h.reservation_addr = h.reservation_valid ? reinterpret_cast<uintptr_t>(h.bus.ram()) + offset : 0;
  h.waiting = r.b();
  h.next_pc = h.pc;
  h.stop_requested = false;
  h.flush_all_caches();
  r.end();
}

}  // namespace nimbus::cpu
