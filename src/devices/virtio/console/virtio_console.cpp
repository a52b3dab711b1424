#include "devices/virtio/console/virtio_console.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace nimbus::devices {

VirtioConsole::VirtioConsole(Sink sink) : sink_(std::move(sink)) {}
VirtioConsole::~VirtioConsole() = default;

void VirtioConsole::activate(VirtioTransport& transport) {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = &transport;
  deliver_rx_locked();
}

void VirtioConsole::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = nullptr;
  tx_notified_while_paused_ = false;
}

void VirtioConsole::pause() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
  }
  io_.wait_idle();  // also waits for a sink call in progress
}

void VirtioConsole::resume() {
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    kick = std::exchange(tx_notified_while_paused_, false);
    deliver_rx_locked();  // input pushed (or receive buffers posted) while paused
  }
  if (kick) queue_notify(kTxQueue);
}

void VirtioConsole::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin(kName);
  const std::vector<uint8_t> rx(rx_pending_.begin(), rx_pending_.end());
  w.blob(rx.data(), rx.size());
  w.u64(stats_.bytes_tx);
  w.u64(stats_.bytes_rx);
  w.u64(stats_.bytes_dropped);
  w.end();
}

void VirtioConsole::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin(kName);
  const std::vector<uint8_t> rx = r.blob(kRxCapacity);
  Stats s;
  s.bytes_tx = r.u64();
  s.bytes_rx = r.u64();
  s.bytes_dropped = r.u64();
  r.end();
  if (!r.ok()) return;
  rx_pending_.assign(rx.begin(), rx.end());
  stats_ = s;
}

void VirtioConsole::queue_notify(unsigned index) {
  if (index == kTxQueue) {
    if (!tx_pending_.exchange(true)) io_.post([this] { process_tx(); });
  } else if (index == kRxQueue) {
    // Coalesced like TX: notifies in a loop must not queue one task each (host memory).
    if (!rx_kick_pending_.exchange(true)) {
      io_.post([this] {
        rx_kick_pending_ = false;
        std::lock_guard<std::mutex> lock(mu_);
        deliver_rx_locked();
      });
    }
  }
}

size_t VirtioConsole::push_input(const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = std::min(len, kRxCapacity - rx_pending_.size());
  rx_pending_.insert(rx_pending_.end(), data, data + n);
  stats_.bytes_dropped += len - n;
  deliver_rx_locked();
  return n;
}

bool VirtioConsole::has_input_space() {
  std::lock_guard<std::mutex> lock(mu_);
  return rx_pending_.size() < kRxCapacity;
}

VirtioConsole::Stats VirtioConsole::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void VirtioConsole::deliver_rx_locked() {
  if (!transport_ || paused_ || rx_pending_.empty()) return;
  Virtqueue& q = transport_->queue(kRxQueue);
  if (!q.ready()) return;
  VirtqChain chain;
  bool pushed = false;
  while (!rx_pending_.empty()) {
    const Virtqueue::PopResult r = q.pop(chain);
    if (r == Virtqueue::PopResult::kEmpty) break;
    if (r == Virtqueue::PopResult::kBroken) {
      transport_->set_needs_reset();
      break;
    }
    uint64_t written = 0;
    for (const VirtqSegment& s : chain.writable) {
      const size_t n = std::min<uint64_t>(s.len, rx_pending_.size());
      std::copy_n(rx_pending_.begin(), n, s.ptr);
      rx_pending_.erase(rx_pending_.begin(), rx_pending_.begin() + n);
      written += n;
      if (rx_pending_.empty()) break;
    }
    stats_.bytes_rx += written;
    q.push_used(chain.head, static_cast<uint32_t>(written));
    pushed = true;
  }
  if (pushed) transport_->notify_queue(kRxQueue);
}

void VirtioConsole::process_tx() {
  tx_pending_ = false;
  std::vector<uint8_t> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!transport_) return;
    if (paused_) {
      tx_notified_while_paused_ = true;
      return;
    }
    drain_queue(*transport_, kTxQueue, [&out](const VirtqChain& chain) {
      // Linux sends at most a page per buffer; a bigger one is cut, never a huge copy.
      const size_t n = std::min<uint64_t>(chain.readable_len, 64 * 1024);
      const size_t at = out.size();
      out.resize(at + n);
      virtq_copy_from(chain.readable, 0, out.data() + at, n);
      return 0u;
    });
    stats_.bytes_tx += out.size();
    transport_->notify_queue(kTxQueue);
  }
  // Outside the lock: the sink may block on a slow terminal. Tasks are serialised on the
  // IoThread, so output stays in order.
  if (!out.empty()) sink_(out.data(), out.size());
}

}  // namespace nimbus::devices
