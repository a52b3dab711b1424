// The virtio-mmio transport, version 2 ("modern", virtio 1.2 section 4.2.2), and the
// interface each virtio device implements. One VirtioMmio occupies one 0x1000 slot and
// drives one VirtioDevice; adding a device type is one VirtioDevice subclass.
//
// Features: the transport always offers VIRTIO_F_VERSION_1 (and refuses FEATURES_OK
// without it), VIRTIO_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC, plus the device's own.
// Interrupts: a level line, high while InterruptStatus != 0 (bit 0 used buffer, bit 1
// configuration change, also raised with DEVICE_NEEDS_RESET when the guest breaks a ring).
//
// Threading and locks (acquired only in this order, never the reverse):
//   1. VirtioMmio::mu_    registers, queue configuration; taken by vCPU threads in
//                         read()/write(). The transport calls the device's reset(),
//                         activate() and queue_notify() with it held.
//   2. the device's lock  its queues at run time and its state; taken by the device's
//                         IoThread, backend threads and the calls above.
//   3. VirtioMmio::irq_mu_ InterruptStatus and the line; a leaf, taken through
//                         VirtioTransport by device code on any thread.
// The `irq` callback runs with irq_mu_ held and must not call back into the transport.
// A device must not touch its queues before activate() or after reset() returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/state_io.h"
#include "devices/virtio/virtqueue.h"
#include "mem/bus.h"

namespace nimbus::devices {

// What a device sees of its transport once activated.
class VirtioTransport {
 public:
  virtual ~VirtioTransport() = default;
  virtual Virtqueue& queue(unsigned index) = 0;
  // Features the driver accepted (valid from activate() until reset()).
  virtual uint64_t driver_features() const = 0;
  // Raises the used-buffer interrupt if the queue's suppression state asks for one.
  // Call after a batch of push_used().
  virtual void notify_queue(unsigned index) = 0;
  // The guest broke a ring: set DEVICE_NEEDS_RESET and raise a config-change interrupt.
  virtual void set_needs_reset() = 0;
  // Device configuration changed: bump ConfigGeneration and raise a config interrupt.
  virtual void config_changed() = 0;
};

// Takes every chain the driver made available on queue `index`, in order, and completes
// each with the used length `handle(chain)` returns (bytes written into its writable
// buffers). A malformed ring sets DEVICE_NEEDS_RESET and stops. Does not notify: the
// caller calls notify_queue() once after the batch.
template <typename Handle>
void drain_queue(VirtioTransport& transport, unsigned index, Handle&& handle) {
  Virtqueue& q = transport.queue(index);
  VirtqChain chain;
  for (;;) {
    const Virtqueue::PopResult r = q.pop(chain);
    if (r == Virtqueue::PopResult::kEmpty) return;
    if (r == Virtqueue::PopResult::kBroken) {
      transport.set_needs_reset();
      return;
    }
    q.push_used(chain.head, handle(chain));
  }
}

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  // "virtio-blk", ...: names the snapshot sections ("<name>-mmio" for the transport, and
  // by convention "<name>" for the device's own) and the device's IoThread. Part of the
  // snapshot format: a device keeps its name.
  virtual std::string name() const { return "virtio-" + std::to_string(device_id()); }
  // Device-specific feature bits (the transport adds its own).
  virtual uint64_t device_features() const = 0;
  virtual unsigned num_queues() const = 0;
  virtual uint16_t queue_max_size(unsigned index) const { return 256; }
  // Device configuration space (offset from 0x100). Reads outside the space return 0.
  virtual void read_config(uint64_t offset, unsigned size, uint64_t& value) = 0;
  virtual void write_config(uint64_t offset, unsigned size, uint64_t value) {}
  // DRIVER_OK was set with FEATURES_OK: the queues that are ready may be used from now.
  virtual void activate(VirtioTransport& transport) = 0;
  // Device reset: stop using the queues; returns after in-flight work has finished.
  virtual void reset() = 0;
  // The driver wrote QueueNotify for a ready queue of an active device (vCPU thread:
  // hand the work to an IoThread).
  virtual void queue_notify(unsigned index) = 0;

  // Quiescing (for snapshots). After pause() returns the device makes no access to guest
  // RAM and no interrupt change until resume(): in-flight requests have finished, and
  // notifications (and host input) arriving meanwhile are remembered and handled at
  // resume(). The defaults suit a device without background work.
  virtual void pause() {}
  virtual void resume() {}
  // The device's own state (not the transport's or the queues'), in a named section.
  // The transport calls load_state on an inactive device, before activate().
  virtual void save_state(StateWriter& w) const {}
  virtual void load_state(StateReader& r) {}
};

class VirtioMmio : public mem::MmioDevice, private VirtioTransport {
 public:
  static constexpr uint64_t kSize = 0x1000;
  static constexpr uint32_t kMagic = 0x74726976;     // "virt"
  static constexpr uint32_t kVendorId = 0x554D4551;  // "QEMU", as Linux tools expect
  // Register offsets (4.2.2).
  static constexpr uint64_t kMagicValue = 0x000, kVersion = 0x004, kDeviceId = 0x008,
                            kVendor = 0x00c, kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014,
                            kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024, kQueueSel = 0x030,
                            kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044,
                            kQueueNotify = 0x050, kInterruptStatus = 0x060, kInterruptAck = 0x064,
                            kStatus = 0x070, kQueueDescLow = 0x080, kQueueDescHigh = 0x084,
                            kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
                            kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kShmSel = 0x0ac,
                            kShmLenLow = 0x0b0, kShmLenHigh = 0x0b4, kShmBaseLow = 0x0b8,
                            kShmBaseHigh = 0x0bc, kConfigGeneration = 0x0fc, kConfig = 0x100;
  // Device status bits (2.1).
  static constexpr uint32_t kStatusAcknowledge = 1, kStatusDriver = 2, kStatusDriverOk = 4,
                            kStatusFeaturesOk = 8, kStatusNeedsReset = 64, kStatusFailed = 128;
  static constexpr uint32_t kIntUsedBuffer = 1, kIntConfigChange = 2;

  // `bus` gives the queues access to guest RAM; `device` must outlive the transport.
  VirtioMmio(mem::Bus& bus, VirtioDevice& device, std::function<void(bool level)> irq);
  ~VirtioMmio() override;

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // For tests and diagnostics.
  bool irq_level();
  uint32_t status();

  // Forward to the device (see VirtioDevice::pause). Call with the vCPUs stopped.
  void pause();
  void resume();

  // Snapshots. Section "<device name>-mmio" (e.g. "virtio-blk-mmio") holding the transport
  // registers, each queue's "virtqueue" section and the device's own section.
  // save_state: call after pause(), so no request is in flight.
  // load_state: call on a transport whose device was built with the same configuration,
  // with guest RAM mapped and restored (an active device is re-activated at once and
  // each ready queue is kicked once, so buffers the driver made available are processed;
  // if the device is paused that work waits for resume()). The interrupt line is driven
  // to the restored InterruptStatus. On failure `r` says why and the transport is left
  // reset (status 0).
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  // VirtioTransport
  Virtqueue& queue(unsigned index) override { return *queues_[index]; }
  uint64_t driver_features() const override { return driver_features_; }
  void notify_queue(unsigned index) override;
  void set_needs_reset() override;
  void config_changed() override;

  uint64_t offered_features() const;
  void reset_locked();
  void write_status_locked(uint32_t value);
  void raise_locked_irq(uint32_t bits);
  void update_line_irq_locked();
  Virtqueue* selected_queue_locked();

  std::string section_name() const;

  mem::Bus& bus_;
  VirtioDevice& device_;
  std::function<void(bool)> irq_;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Virtqueue>> queues_;
  uint32_t status_ = 0;  // without NEEDS_RESET, which lives in needs_reset_
  uint32_t device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
  uint64_t driver_features_ = 0;
  bool active_ = false;
  std::atomic<uint32_t> config_generation_{0};

  mutable std::mutex irq_mu_;
  uint32_t interrupt_status_ = 0;
  bool line_ = false;
  std::atomic<bool> needs_reset_{false};
};

}  // namespace nimbus::devices
