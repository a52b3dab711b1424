// virtio-rng (virtio 1.2 section 5.4), device id 4: one request queue whose writable
// buffers the device fills from the host's getrandom(). Fills run on the device's
// IoThread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "devices/virtio/io_thread.h"
#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

class VirtioRng : public VirtioDevice {
 public:
  // Names its snapshot sections ("virtio-rng-mmio", "virtio-rng"): never change it.
  static constexpr const char* kName = "virtio-rng";
  static constexpr uint32_t kDeviceId = 4;
  static constexpr uint16_t kQueueSize = 64;
  // At most this many bytes per request (the guest asks again for more).
  static constexpr uint32_t kMaxFill = 64 * 1024;

  struct Stats {
    uint64_t requests = 0;
    uint64_t bytes = 0;
  };

  VirtioRng();
  ~VirtioRng() override;

  uint32_t device_id() const override { return kDeviceId; }
  std::string name() const override { return kName; }
  uint64_t device_features() const override { return 0; }
  unsigned num_queues() const override { return 1; }
  uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
  void read_config(uint64_t offset, unsigned size, uint64_t& value) override { value = 0; }
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queue_notify(unsigned index) override;
  void pause() override;
  void resume() override;
  // Section "virtio-rng": the counters.
  void save_state(StateWriter& w) const override;
  void load_state(StateReader& r) override;

  Stats stats();

 private:
  void process();

  mutable std::mutex mu_;
  VirtioTransport* transport_ = nullptr;
  Stats stats_;
  bool paused_ = false;
  bool notified_while_paused_ = false;
  std::atomic<bool> kick_pending_{false};
  IoThread io_{kName};
};

}  // namespace nimbus::devices
