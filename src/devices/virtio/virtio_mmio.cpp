#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

VirtioMmio::VirtioMmio(mem::Bus& bus, VirtioDevice& device, std::function<void(bool)> irq)
    : bus_(bus), device_(device), irq_(std::move(irq)) {
  for (unsigned i = 0; i < device_.num_queues(); i++) {
    queues_.push_back(std::make_unique<Virtqueue>(bus_, device_.queue_max_size(i)));
  }
}

VirtioMmio::~VirtioMmio() {
  std::lock_guard<std::mutex> lock(mu_);
  if (active_) device_.reset();
}

uint64_t VirtioMmio::offered_features() const {
  return device_.device_features() | kVirtioFVersion1 | kVirtioFEventIdx | kVirtioFIndirectDesc;
}

bool VirtioMmio::irq_level() {
  std::lock_guard<std::mutex> lock(irq_mu_);
  return line_;
}

uint32_t VirtioMmio::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_ | (needs_reset_ ? kStatusNeedsReset : 0);
}

void VirtioMmio::update_line_irq_locked() {
  const bool level = interrupt_status_ != 0;
  if (level != line_) {
    line_ = level;
    irq_(level);
  }
}

void VirtioMmio::raise_locked_irq(uint32_t bits) {
  std::lock_guard<std::mutex> lock(irq_mu_);
  interrupt_status_ |= bits;
  update_line_irq_locked();
}

void VirtioMmio::notify_queue(unsigned index) {
  if (index < queues_.size() && queues_[index]->needs_interrupt()) raise_locked_irq(kIntUsedBuffer);
}

void VirtioMmio::set_needs_reset() {
  if (needs_reset_.exchange(true)) return;
  config_generation_.fetch_add(1);
  raise_locked_irq(kIntConfigChange);
}

void VirtioMmio::config_changed() {
  config_generation_.fetch_add(1);
  raise_locked_irq(kIntConfigChange);
}

Virtqueue* VirtioMmio::selected_queue_locked() {
  return queue_sel_ < queues_.size() ? queues_[queue_sel_].get() : nullptr;
}

void VirtioMmio::reset_locked() {
  // The device first: it stops and waits for in-flight requests before the queues go.
  if (active_) device_.reset();
  active_ = false;
  for (auto& q : queues_) q->reset();
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  needs_reset_ = false;
  std::lock_guard<std::mutex> lock(irq_mu_);
  interrupt_status_ = 0;
  update_line_irq_locked();
}

void VirtioMmio::write_status_locked(uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  value &= ~kStatusNeedsReset;  // device-owned
  const uint32_t added = value & ~status_;
  if (added & kStatusFeaturesOk) {
    // 3.1.1: the device refuses features it did not offer, and a modern transport needs
    // VERSION_1; the driver sees FEATURES_OK clear when it reads status back.
    const bool ok =
        (driver_features_ & ~offered_features()) == 0 && (driver_features_ & kVirtioFVersion1);
    if (!ok) value &= ~kStatusFeaturesOk;
  }
  if ((added & kStatusDriverOk) && (value & kStatusFeaturesOk) && !active_) {
    active_ = true;
    device_.activate(*this);
  }
  status_ = value;
}

bool VirtioMmio::read(uint64_t offset, unsigned size, uint64_t& value) {
  value = 0;
  if (offset >= kSize) return false;
  if (offset >= kConfig) {
    device_.read_config(offset - kConfig, size, value);
    return true;
  }
  // Registers are 32-bit (4.2.2.2); other widths read as 0.
  if (size != 4) return true;
  std::lock_guard<std::mutex> lock(mu_);
  Virtqueue* q = selected_queue_locked();
  uint32_t v = 0;
  switch (offset) {
    case kMagicValue:
      v = kMagic;
      break;
    case kVersion:
      v = 2;
      break;
    case kDeviceId:
      v = device_.device_id();
      break;
    case kVendor:
      v = kVendorId;
      break;
    case kDeviceFeatures:
      if (device_features_sel_ < 2)
        v = static_cast<uint32_t>(offered_features() >> (32 * device_features_sel_));
      break;
    case kQueueNumMax:
      v = q ? q->max_size() : 0;
      break;
    case kQueueNum:
      v = q ? q->size() : 0;
      break;
    case kQueueReady:
      v = q && q->ready() ? 1 : 0;
      break;
    case kQueueDescLow:
      v = q ? static_cast<uint32_t>(q->desc_addr) : 0;
      break;
    case kQueueDescHigh:
      v = q ? static_cast<uint32_t>(q->desc_addr >> 32) : 0;
      break;
    case kQueueDriverLow:
      v = q ? static_cast<uint32_t>(q->driver_addr) : 0;
      break;
    case kQueueDriverHigh:
      v = q ? static_cast<uint32_t>(q->driver_addr >> 32) : 0;
      break;
    case kQueueDeviceLow:
      v = q ? static_cast<uint32_t>(q->device_addr) : 0;
      break;
    case kQueueDeviceHigh:
      v = q ? static_cast<uint32_t>(q->device_addr >> 32) : 0;
      break;
    case kInterruptStatus: {
      std::lock_guard<std::mutex> irq_lock(irq_mu_);
      v = interrupt_status_;
      break;
    }
    case kStatus:
      v = status_ | (needs_reset_ ? kStatusNeedsReset : 0);
      break;
    case kShmLenLow:
    case kShmLenHigh:
      v = 0xffffffff;
      break;  // no shared memory regions
    case kShmBaseLow:
    case kShmBaseHigh:
      v = 0xffffffff;
      break;
    case kConfigGeneration:
      v = config_generation_.load();
      break;
    default:
      break;
  }
  value = v;
  return true;
}

bool VirtioMmio::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= kSize) return false;
  if (offset >= kConfig) {
    device_.write_config(offset - kConfig, size, value);
    return true;
  }
  if (size != 4) return true;
  const uint32_t v = static_cast<uint32_t>(value);
  std::lock_guard<std::mutex> lock(mu_);
  Virtqueue* q = selected_queue_locked();
  // 4.2.2.3: queue layout registers only change while the queue is not ready (and the
  // device not running); later writes are ignored.
  const bool q_writable = q && !q->ready() && !active_;
  switch (offset) {
    case kDeviceFeaturesSel:
      device_features_sel_ = v;
      break;
    case kDriverFeaturesSel:
      driver_features_sel_ = v;
      break;
    case kDriverFeatures:
      if (!(status_ & kStatusFeaturesOk) && driver_features_sel_ < 2) {
        const unsigned shift = 32 * driver_features_sel_;
        driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{v} << shift);
      }
      break;
    case kQueueSel:
      queue_sel_ = v;
      break;
    case kQueueNum:
      if (q_writable) q->set_size(static_cast<uint16_t>(v > 0xffff ? 0 : v));
      break;
    case kQueueReady:
      if (!q) break;
      if (v == 0) {
        if (!active_) q->disable();
      } else if (!q->ready() && !active_) {
        if (!q->enable(driver_features_ & kVirtioFEventIdx,
                       driver_features_ & kVirtioFIndirectDesc)) {
          // A queue outside RAM, misaligned or of a bad size: refuse it loudly.
          set_needs_reset();
        }
      }
      break;
    case kQueueDescLow:
      if (q_writable) q->desc_addr = (q->desc_addr & ~0xffffffffull) | v;
      break;
    case kQueueDescHigh:
      if (q_writable) q->desc_addr = (q->desc_addr & 0xffffffffull) | (uint64_t{v} << 32);
      break;
    case kQueueDriverLow:
      if (q_writable) q->driver_addr = (q->driver_addr & ~0xffffffffull) | v;
      break;
    case kQueueDriverHigh:
      if (q_writable) q->driver_addr = (q->driver_addr & 0xffffffffull) | (uint64_t{v} << 32);
      break;
    case kQueueDeviceLow:
      if (q_writable) q->device_addr = (q->device_addr & ~0xffffffffull) | v;
      break;
    case kQueueDeviceHigh:
      if (q_writable) q->device_addr = (q->device_addr & 0xffffffffull) | (uint64_t{v} << 32);
      break;
    case kQueueNotify:
      // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
      if (active_ && !needs_reset_ && v < queues_.size() && queues_[v]->ready())
        device_.queue_notify(v);
      break;
    case kInterruptAck: {
      std::lock_guard<std::mutex> irq_lock(irq_mu_);
      interrupt_status_ &= ~v;
      update_line_irq_locked();
      break;
    }
    case kStatus:
      write_status_locked(v);
      break;
    default:
      break;
  }
  return true;
}

}  // namespace nimbus::devices
