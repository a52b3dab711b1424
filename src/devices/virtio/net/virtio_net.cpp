#include "devices/virtio/net/virtio_net.h"

#include <cstring>
#include <utility>
#include <vector>

namespace nimbus::devices {

VirtioNet::VirtioNet(std::unique_ptr<backends::NetBackend> backend, Mac mac, uint16_t mtu)
    : backend_(std::move(backend)), mac_(mac), mtu_(mtu) {}

VirtioNet::~VirtioNet() {
  // No task may call send/resume_receive after the backend stops.
  io_.stop();
  if (started_) backend_->stop();
}

Status VirtioNet::start() {
  if (started_) return {};
  Status s =
      backend_->start([this](const uint8_t* frame, size_t len) { return receive(frame, len); });
  started_ = s.ok();
  return s;
}

void VirtioNet::read_config(uint64_t offset, unsigned size, uint64_t& value) {
  uint8_t cfg[12] = {};
  std::memcpy(cfg, mac_.data(), 6);
  cfg[6] = kStatusLinkUp;                // le16 status
  cfg[10] = static_cast<uint8_t>(mtu_);  // le16 mtu (read only with VIRTIO_NET_F_MTU)
  cfg[11] = static_cast<uint8_t>(mtu_ >> 8);
  value = 0;
  if (offset < sizeof(cfg) && size <= sizeof(cfg) - offset) std::memcpy(&value, cfg + offset, size);
}

void VirtioNet::activate(VirtioTransport& transport) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    transport_ = &transport;
  }
  // Frames the backend held while the driver was not ready can come now.
  io_.post([this] { backend_->resume_receive(); });
}

void VirtioNet::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = nullptr;
  tx_notified_while_paused_ = false;
}

void VirtioNet::pause() {
  {
    // Waits for a frame being received; later ones are refused.
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
  }
  io_.wait_idle();  // a TX batch in progress, including its sends
}

void VirtioNet::resume() {
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    kick = std::exchange(tx_notified_while_paused_, false);
  }
  if (kick) queue_notify(kTxQueue);
  // Frames the backend held meanwhile.
  io_.post([this] { backend_->resume_receive(); });
}

void VirtioNet::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin(kName);
  for (uint64_t v : {stats_.tx_packets, stats_.tx_bytes, stats_.tx_dropped, stats_.rx_packets,
                     stats_.rx_bytes, stats_.rx_dropped}) {
    w.u64(v);
  }
  w.end();
}

void VirtioNet::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin(kName);
  Stats s;
  for (uint64_t* v :
       {&s.tx_packets, &s.tx_bytes, &s.tx_dropped, &s.rx_packets, &s.rx_bytes, &s.rx_dropped}) {
    *v = r.u64();
  }
  r.end();
  if (r.ok()) stats_ = s;
}

void VirtioNet::queue_notify(unsigned index) {
  if (index == kTxQueue) {
    if (!tx_pending_.exchange(true)) io_.post([this] { process_tx(); });
  } else if (index == kRxQueue) {
    // resume_receive may deliver frames synchronously; keep that off the vCPU thread.
    // One pending task answers any number of notifies: a guest writing QueueNotify in a
    // loop must not grow the IoThread's queue faster than it drains (host memory).
    if (!rx_kick_pending_.exchange(true)) {
      io_.post([this] {
        rx_kick_pending_ = false;
        backend_->resume_receive();
      });
    }
  }
}

VirtioNet::Stats VirtioNet::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool VirtioNet::receive(const uint8_t* frame, size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!transport_ || paused_) return false;
  Virtqueue& q = transport_->queue(kRxQueue);
  if (!q.ready() || q.broken()) return false;
  VirtqChain chain;
  const Virtqueue::PopResult r = q.pop(chain);
  if (r == Virtqueue::PopResult::kEmpty) return false;
  if (r == Virtqueue::PopResult::kBroken) {
    transport_->set_needs_reset();
    return false;
  }
  if (chain.writable_len < kHdrSize + len) {
    // Does not fit (Linux sizes buffers for its MTU): drop this frame, keep the buffer.
    q.unpop();
    ++stats_.rx_dropped;
    return true;
  }
  uint8_t hdr[kHdrSize] = {};
  hdr[10] = 1;  // num_buffers (le16) = 1 without MRG_RXBUF (5.1.6.4)
  virtq_copy_to(chain.writable, 0, hdr, kHdrSize);
  virtq_copy_to(chain.writable, kHdrSize, frame, len);
  q.push_used(chain.head, static_cast<uint32_t>(kHdrSize + len));
  ++stats_.rx_packets;
  stats_.rx_bytes += len;
  transport_->notify_queue(kRxQueue);
  return true;
}

void VirtioNet::process_tx() {
  tx_pending_ = false;
  std::vector<std::vector<uint8_t>> frames;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!transport_) return;
    if (paused_) {
      tx_notified_while_paused_ = true;
      return;
    }
    drain_queue(*transport_, kTxQueue, [this, &frames](const VirtqChain& chain) {
      if (chain.readable_len < kHdrSize || chain.readable_len - kHdrSize > kMaxFrame) {
        ++stats_.tx_dropped;
      } else {
        std::vector<uint8_t> f(chain.readable_len - kHdrSize);
        virtq_copy_from(chain.readable, kHdrSize, f.data(), f.size());
        ++stats_.tx_packets;
        stats_.tx_bytes += f.size();
        frames.push_back(std::move(f));
      }
      return 0u;
    });
    transport_->notify_queue(kTxQueue);
  }
  // Outside the lock: a backend may answer (e.g. ARP) synchronously through receive().
  for (const auto& f : frames) backend_->send(f.data(), f.size());
}

}  // namespace nimbus::devices
