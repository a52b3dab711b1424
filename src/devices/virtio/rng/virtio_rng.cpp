#include "devices/virtio/rng/virtio_rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace nimbus::devices {

namespace {

// Fills as much of [p, p+len) as getrandom gives without blocking for long; returns bytes.
size_t fill_random(uint8_t* p, size_t len) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = getrandom(p + done, len - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

VirtioRng::VirtioRng() = default;
VirtioRng::~VirtioRng() = default;

void VirtioRng::activate(VirtioTransport& transport) {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = &transport;
}

void VirtioRng::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = nullptr;
  notified_while_paused_ = false;
}

void VirtioRng::pause() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
  }
  io_.wait_idle();
}

void VirtioRng::resume() {
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    kick = std::exchange(notified_while_paused_, false);
  }
  if (kick) queue_notify(0);
}

void VirtioRng::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin(kName);
  w.u64(stats_.requests);
  w.u64(stats_.bytes);
  w.end();
}

void VirtioRng::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin(kName);
  Stats s;
  s.requests = r.u64();
  s.bytes = r.u64();
  r.end();
  if (r.ok()) stats_ = s;
}

void VirtioRng::queue_notify(unsigned index) {
  if (index == 0 && !kick_pending_.exchange(true)) io_.post([this] { process(); });
}

VirtioRng::Stats VirtioRng::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void VirtioRng::process() {
  kick_pending_ = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!transport_) return;
  if (paused_) {
    notified_while_paused_ = true;
    return;
  }
  drain_queue(*transport_, 0, [this](const VirtqChain& chain) {
    uint64_t budget = kMaxFill, written = 0;
    for (const VirtqSegment& s : chain.writable) {
      if (budget == 0) break;
      const size_t want = std::min<uint64_t>(s.len, budget);
      const size_t got = fill_random(s.ptr, want);
      written += got;
      budget -= want;
      if (got < want) break;
    }
    ++stats_.requests;
    stats_.bytes += written;
    return static_cast<uint32_t>(written);
  });
  transport_->notify_queue(0);
}

}  // namespace nimbus::devices
