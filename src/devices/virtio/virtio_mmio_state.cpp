// VirtioMmio's quiescing and snapshot state (the register file is in virtio_mmio.cpp).
#include <string>

#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

std::string VirtioMmio::section_name() const { return device_.name() + "-mmio"; }

void VirtioMmio::pause() {
  std::lock_guard<std::mutex> lock(mu_);
  device_.pause();
}

void VirtioMmio::resume() {
  std::lock_guard<std::mutex> lock(mu_);
  device_.resume();
}

void VirtioMmio::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin(section_name());
  w.u32(device_.device_id());
  w.u32(static_cast<uint32_t>(queues_.size()));
  w.u32(status_);
  w.u32(device_features_sel_);
  w.u32(driver_features_sel_);
  w.u32(queue_sel_);
  w.u64(driver_features_);
  w.b(active_);
  w.u32(config_generation_.load());
  {
    std::lock_guard<std::mutex> irq_lock(irq_mu_);
    w.u32(interrupt_status_);
  }
  w.b(needs_reset_.load());
  for (const auto& q : queues_) q->save_state(w);
  device_.save_state(w);
  w.end();
}

void VirtioMmio::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  reset_locked();
  r.begin(section_name());
  const uint32_t id = r.u32();
  const uint32_t num_queues = r.u32();
  const uint32_t status = r.u32();
  const uint32_t device_sel = r.u32(), driver_sel = r.u32(), queue_sel = r.u32();
  const uint64_t driver_features = r.u64();
  const bool active = r.b();
  const uint32_t generation = r.u32();
  const uint32_t interrupt_status = r.u32();
  const bool needs_reset = r.b();
  if (!r.ok()) {
    // Nothing more to read.
  } else if (id != device_.device_id()) {
    r.fail("device id " + std::to_string(id) + " is not this device's " +
           std::to_string(device_.device_id()));
  } else if (num_queues != queues_.size()) {
    r.fail(std::to_string(num_queues) + " queues, the device has " +
           std::to_string(queues_.size()));
  } else if (status & kStatusNeedsReset) {
    r.fail("status has DEVICE_NEEDS_RESET outside its flag");
  } else if (interrupt_status & ~(kIntUsedBuffer | kIntConfigChange)) {
    r.fail("unknown InterruptStatus bits");
  }
  for (auto& q : queues_) {
    if (!r.ok()) break;
    q->load_state(r);
  }
  if (r.ok()) device_.load_state(r);
  r.end();
  if (!r.ok()) {
    reset_locked();
    return;
  }
  status_ = status;
  device_features_sel_ = device_sel;
  driver_features_sel_ = driver_sel;
  queue_sel_ = queue_sel;
  driver_features_ = driver_features;
  config_generation_ = generation;
  needs_reset_ = needs_reset;
  active_ = active;
  {
    // Before the device runs: a completion it posts must not be overwritten.
    std::lock_guard<std::mutex> irq_lock(irq_mu_);
    interrupt_status_ = interrupt_status;
    update_line_irq_locked();
  }
  if (active_) {
    device_.activate(*this);
    // A notification may have been pending in the old process: look at every queue once
    // (a spurious kick only finds the ring empty).
    for (unsigned i = 0; i < queues_.size(); i++) {
      if (!needs_reset_ && queues_[i]->ready()) device_.queue_notify(i);
    }
  }
}

}  // namespace nimbus::devices
