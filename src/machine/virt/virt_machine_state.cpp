// VirtMachine's snapshot state: what the board holds besides RAM.
#include <fmt/format.h>

#include "cpu/hart_state.h"
#include "devices/clint/clint.h"
#include "devices/finisher/finisher.h"
#include "devices/plic/plic.h"
#include "devices/rtc/goldfish_rtc.h"
#include "devices/uart/uart16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "machine/virt/virt_machine.h"

namespace nimbus::machine::virt {

namespace {
constexpr uint32_t kMachineStateVersion = 1;
}  // namespace

void VirtMachine::save_state(StateWriter& w) {
  w.begin("virt");
  w.u32(kMachineStateVersion);
  w.u32(static_cast<uint32_t>(slots_.size()));
  w.u64(config_.ram_size);
  w.b(builtin_sbi_);
  w.u32(static_cast<uint32_t>(virtio_slots_.size()));
  w.u64(guest_ns());
  for (auto& slot : slots_) {
    w.begin("hart-slot");
    w.u64(static_cast<uint64_t>(slot->state.load()));
    w.u64(slot->start_addr);
    w.u64(slot->start_opaque);
    cpu::save_hart_state(*slot->hart, w);
    w.end();
  }
  clint_->save_state(w);
  plic_->save_state(w);
  uart_->save_state(w);
  rtc_->save_state(w);
  finisher_->save_state(w);
  for (size_t i = 0; i < virtio_slots_.size(); i++) {
    w.begin("virtio-slot");
    virtio_slots_[i]->save_state(w);
    w.end();
  }
  w.end();
}

void VirtMachine::load_state(StateReader& r) {
  r.begin("virt");
  const uint32_t version = r.u32();
  if (r.ok() && version != kMachineStateVersion) {
    r.fail(fmt::format("machine state version {} is not supported (this Nimbus reads {})", version,
                       kMachineStateVersion));
    return;
  }
  const uint32_t harts = r.u32();
  const uint64_t ram = r.u64();
  const bool builtin = r.b();
  const uint32_t virtio = r.u32();
  const uint64_t ns = r.u64();
  if (!r.ok()) return;
  if (harts != slots_.size())
    return r.fail(fmt::format("the snapshot has {} harts, the machine {}", harts, slots_.size()));
  if (ram != config_.ram_size) return r.fail("the snapshot's RAM size differs from the machine's");
  if (builtin != builtin_sbi_)
    return r.fail("the snapshot was taken with another firmware setting");
  if (virtio != virtio_slots_.size()) {
    return r.fail(fmt::format("the snapshot has {} virtio devices, the machine {}", virtio,
                              virtio_slots_.size()));
  }
  frozen_ns_ = ns;
  clock_offset_ns_ = static_cast<int64_t>(ns) - static_cast<int64_t>(monotonic_now_ns());
  for (auto& slot : slots_) {
    r.begin("hart-slot");
    const uint64_t state = r.u64();
    if (r.ok() && state != kHartStarted && state != kHartStopped && state != kHartStartPending) {
      return r.fail(fmt::format("invalid hart state {}", state));
    }
    slot->state = static_cast<int64_t>(state);
    slot->start_addr = r.u64();
    slot->start_opaque = r.u64();
    cpu::load_hart_state(*slot->hart, r);
    r.end();
  }
  clint_->load_state(r);
  plic_->load_state(r);
  uart_->load_state(r);
  rtc_->load_state(r);
  finisher_->load_state(r);
  for (size_t i = 0; i < virtio_slots_.size() && r.ok(); i++) {
    r.begin("virtio-slot");
    virtio_slots_[i]->load_state(r);
    r.end();
  }
  r.end();
  if (!r.ok()) return;
  for (unsigned i = 0; i < slots_.size(); i++) {
    slots_[i]->hart->flush_all_caches();
    clint_->update_timer(i);
  }
}

}  // namespace nimbus::machine::virt
