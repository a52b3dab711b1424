// virtio-net (virtio 1.2 section 5.1), device id 1, over a NetBackend. Queue 0 is
// receiveq1, queue 1 transmitq1; no control queue, no multiqueue, no offloads.
// Features: VIRTIO_NET_F_MAC (the MAC given at construction), VIRTIO_NET_F_STATUS
// (link always up) and, when given an MTU, VIRTIO_NET_F_MTU (the guest's driver takes it
// as the interface's MTU and its maximum). Every frame carries the 12-byte struct virtio_net_hdr_v1
// (VERSION_1 makes num_buffers part of it); with no offloads it is all zeros, and on RX num_buffers
// is 1 (no MRG_RXBUF).
//
// TX: a transmitq notify posts work to the device's IoThread, which strips the header
// and hands each frame to NetBackend::send after releasing the device lock.
// RX: the backend's Receiver (its own thread) copies a frame into the next receive chain
// and returns false when there is none; a receiveq notify calls resume_receive() from the
// IoThread. A frame bigger than the chain is dropped (counted) and the chain kept.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "backends/net/net_backend.h"
#include "common/status.h"
#include "devices/virtio/io_thread.h"
#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

class VirtioNet : public VirtioDevice {
 public:
  // Names its snapshot sections ("virtio-net-mmio", "virtio-net"): never change it.
  static constexpr const char* kName = "virtio-net";
  static constexpr uint32_t kDeviceId = 1;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr unsigned kRxQueue = 0, kTxQueue = 1;
  static constexpr uint64_t kFMtu = 1ull << 3, kFMac = 1ull << 5, kFStatus = 1ull << 16;
  static constexpr uint16_t kStatusLinkUp = 1;
  static constexpr size_t kHdrSize = 12;  // struct virtio_net_hdr_v1
  // Largest frame accepted from the guest (no GSO: MTU 1500 + Ethernet header, with
  // room for VLAN tags and jumbo-ish frames).
  static constexpr size_t kMaxFrame = 65535;

  struct Stats {
    uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
    uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;
  };

  using Mac = std::array<uint8_t, 6>;
  // `mtu` 0: no VIRTIO_NET_F_MTU (the guest picks 1500).
  VirtioNet(std::unique_ptr<backends::NetBackend> backend, Mac mac, uint16_t mtu = 0);
  // Stops the backend first, so no receiver call runs into a dying device.
  ~VirtioNet() override;

  // Starts the backend's threads (frames arrive through the receiver from then on; they
  // wait in the backend until the driver is ready). Call once, after construction.
  Status start();

  uint32_t device_id() const override { return kDeviceId; }
  std::string name() const override { return kName; }
  uint64_t device_features() const override { return kFMac | kFStatus | (mtu_ != 0 ? kFMtu : 0); }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
  // struct virtio_net_config: mac[6], status (le16), max_virtqueue_pairs (le16, 0: no
  // VIRTIO_NET_F_MQ), mtu (le16).
  void read_config(uint64_t offset, unsigned size, uint64_t& value) override;
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queue_notify(unsigned index) override;
  // While paused, frames from the backend are refused (the backend holds them in its
  // bounded queue, or drops them when it is full) and delivered after resume().
  void pause() override;
  void resume() override;
  // Section "virtio-net": the counters.
  void save_state(StateWriter& w) const override;
  void load_state(StateReader& r) override;

  // Thread-safe.
  Stats stats();
  // The host side, for changes while the device runs (NetBackend::set_forwards).
  backends::NetBackend& backend() { return *backend_; }

 private:
  bool receive(const uint8_t* frame, size_t len);
  void process_tx();

  std::unique_ptr<backends::NetBackend> backend_;
  Mac mac_;
  uint16_t mtu_ = 0;
  mutable std::mutex mu_;
  VirtioTransport* transport_ = nullptr;
  Stats stats_;
  bool paused_ = false;
  bool tx_notified_while_paused_ = false;
  std::atomic<bool> tx_pending_{false};
  std::atomic<bool> rx_kick_pending_{false};  // a resume_receive task is queued
  bool started_ = false;
  IoThread io_{kName};
};

}  // namespace nimbus::devices
