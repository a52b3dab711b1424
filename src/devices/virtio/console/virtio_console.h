// virtio-console (virtio 1.2 section 5.3), device id 3, a single port without
// VIRTIO_CONSOLE_F_MULTIPORT: queue 0 is receiveq0 (host -> guest), queue 1 transmitq0
// (guest -> host). Linux names it /dev/hvc0.
//
// TX: on a transmitq notify the device's IoThread gathers the bytes and hands them to
// `sink`, in order, without holding the device lock.
// RX: push_input() (any thread, typically the console thread) queues bytes in a bounded
// buffer (kRxCapacity) and copies them into the guest's receive buffers at once if there
// are any; the rest waits for the next receiveq notify.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "devices/virtio/io_thread.h"
#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

class VirtioConsole : public VirtioDevice {
 public:
  // Names its snapshot sections ("virtio-console-mmio", "virtio-console"): never change it.
  static constexpr const char* kName = "virtio-console";
  static constexpr uint32_t kDeviceId = 3;
  static constexpr uint16_t kQueueSize = 128;
  static constexpr unsigned kRxQueue = 0, kTxQueue = 1;
  static constexpr size_t kRxCapacity = 64 * 1024;

  struct Stats {
    uint64_t bytes_tx = 0;       // guest -> host
    uint64_t bytes_rx = 0;       // host -> guest, delivered
    uint64_t bytes_dropped = 0;  // push_input beyond kRxCapacity
  };

  using Sink = std::function<void(const uint8_t* data, size_t len)>;
  explicit VirtioConsole(Sink sink);
  ~VirtioConsole() override;

  uint32_t device_id() const override { return kDeviceId; }
  std::string name() const override { return kName; }
  uint64_t device_features() const override { return 0; }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
  // struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr; none offered, zeros.
  void read_config(uint64_t offset, unsigned size, uint64_t& value) override { value = 0; }
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queue_notify(unsigned index) override;
  // While paused, push_input() still buffers bytes (up to kRxCapacity); they reach the
  // guest after resume().
  void pause() override;
  void resume() override;
  // Section "virtio-console": the input bytes not yet delivered and the counters.
  void save_state(StateWriter& w) const override;
  void load_state(StateReader& r) override;

  // Returns how many bytes were accepted (the rest is dropped: the buffer is full).
  size_t push_input(const uint8_t* data, size_t len);
  bool has_input_space();
  Stats stats();
  // Tasks waiting for the device's IoThread (tests and diagnostics).
  size_t io_backlog() { return io_.backlog(); }

 private:
  void process_tx();
  void deliver_rx_locked();

  Sink sink_;
  mutable std::mutex mu_;
  VirtioTransport* transport_ = nullptr;
  std::deque<uint8_t> rx_pending_;
  Stats stats_;
  bool paused_ = false;
  bool tx_notified_while_paused_ = false;
  std::atomic<bool> tx_pending_{false};
  std::atomic<bool> rx_kick_pending_{false};  // a deliver task is queued
  IoThread io_{kName};
};

}  // namespace nimbus::devices
