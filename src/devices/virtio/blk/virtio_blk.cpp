#include "devices/virtio/blk/virtio_blk.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace nimbus::devices {

namespace {

struct ReqHeader {  // struct virtio_blk_req's device-readable head (5.2.6)
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(ReqHeader) == 16);

struct DiscardSegment {  // struct virtio_blk_discard_write_zeroes
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
};
static_assert(sizeof(DiscardSegment) == 16);
constexpr uint32_t kDiscardFlagUnmap = 1;

// True if [sector, sector + bytes) lies within a disk of `size` bytes.
bool in_range(uint64_t size, uint64_t sector, uint64_t bytes) {
  if (sector > size / VirtioBlk::kSectorSize) return false;
  const uint64_t offset = sector * VirtioBlk::kSectorSize;
  return bytes <= size - offset;
}

void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace

VirtioBlk::VirtioBlk(std::unique_ptr<backends::BlockBackend> disk, std::string serial)
    : disk_(std::move(disk)), serial_(std::move(serial)) {}

VirtioBlk::~VirtioBlk() = default;

uint64_t VirtioBlk::device_features() const {
  uint64_t f = kFSizeMax | kFSegMax | kFBlkSize | kFFlush;
  if (disk_->read_only()) {
    f |= kFRo;
  } else {
    f |= kFDiscard | kFWriteZeroes;
  }
  return f;
}

void VirtioBlk::read_config(uint64_t offset, unsigned size, uint64_t& value) {
  // struct virtio_blk_config (5.2.4), up to write_zeroes_may_unmap.
  uint8_t cfg[60] = {};
  const uint64_t capacity = disk_->size() / kSectorSize;
  std::memcpy(cfg + 0, &capacity, 8);
  put32(cfg + 8, kSizeMax);
  put32(cfg + 12, kSegMax);
  put32(cfg + 20, kSectorSize);  // blk_size
  if (!disk_->read_only()) {
    put32(cfg + 36, kMaxDiscardSectors);
    put32(cfg + 40, 1);  // max_discard_seg
    put32(cfg + 44, 1);  // discard_sector_alignment, in sectors
    put32(cfg + 48, kMaxWriteZeroesSectors);
    put32(cfg + 52, 1);  // max_write_zeroes_seg
    cfg[56] = 0;         // write_zeroes_may_unmap
  }
  value = 0;
  if (offset < sizeof(cfg) && size <= sizeof(cfg) - offset) std::memcpy(&value, cfg + offset, size);
}

void VirtioBlk::activate(VirtioTransport& transport) {
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = &transport;
}

void VirtioBlk::reset() {
  // Taking the lock waits for a request being processed; queued IoThread tasks find the
  // device inactive and do nothing.
  std::lock_guard<std::mutex> lock(mu_);
  transport_ = nullptr;
  notified_while_paused_ = false;
}

void VirtioBlk::pause() {
  {
    // Waits for a batch being processed; tasks that run later only note the notify.
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
  }
  io_.wait_idle();
  std::lock_guard<std::mutex> lock(mu_);
  if (!disk_->flush().ok()) ++stats_.errors;
}

void VirtioBlk::resume() {
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    kick = std::exchange(notified_while_paused_, false);
  }
  if (kick) queue_notify(0);
}

void VirtioBlk::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin(kName);
  w.u64(disk_->size());
  w.b(disk_->read_only());
  for (uint64_t v : {stats_.requests, stats_.read_requests, stats_.write_requests,
                     stats_.flush_requests, stats_.discard_requests, stats_.write_zeroes_requests,
                     stats_.bytes_read, stats_.bytes_written, stats_.errors}) {
    w.u64(v);
  }
  w.end();
}

void VirtioBlk::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin(kName);
  const uint64_t size = r.u64();
  const bool read_only = r.b();
  Stats s;
  for (uint64_t* v :
       {&s.requests, &s.read_requests, &s.write_requests, &s.flush_requests, &s.discard_requests,
        &s.write_zeroes_requests, &s.bytes_read, &s.bytes_written, &s.errors}) {
    *v = r.u64();
  }
  if (r.ok() && size != disk_->size()) {
    r.fail("the disk is " + std::to_string(disk_->size()) + " bytes, the snapshot's was " +
           std::to_string(size));
  } else if (r.ok() && read_only != disk_->read_only()) {
    r.fail(read_only ? "the snapshot's disk was read-only, this one is writable"
                     : "the snapshot's disk was writable, this one is read-only");
  }
  r.end();
  if (r.ok()) stats_ = s;
}

void VirtioBlk::queue_notify(unsigned index) {
  if (index != 0) return;
  // One pending task drains the queue; more notifies while it is pending add nothing.
  if (!kick_pending_.exchange(true)) io_.post([this] { process(); });
}

VirtioBlk::Stats VirtioBlk::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void VirtioBlk::process() {
  kick_pending_ = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!transport_) return;
  if (paused_) {
    notified_while_paused_ = true;
    return;
  }
  unsigned done = 0;
  drain_queue(*transport_, 0, [this, &done](const VirtqChain& chain) {
    // Interrupt per completion batch; on long queues let the guest see progress too.
    if (++done % 32 == 0) transport_->notify_queue(0);
    return execute(*disk_, serial_, chain, stats_);
  });
  transport_->notify_queue(0);
}

uint32_t VirtioBlk::execute(backends::BlockBackend& disk, const std::string& serial,
                            const VirtqChain& chain, Stats& stats) {
  ++stats.requests;
  if (chain.writable_len == 0) {
    // Nowhere to put the status byte: nothing can be reported.
    ++stats.errors;
    return 0;
  }
  const VirtqSegment& last = chain.writable.back();
  uint8_t* status = last.ptr + last.len - 1;
  const uint64_t in_len = chain.writable_len - 1;  // device-writable data before status

  auto finish = [&](uint8_t s, uint64_t written) -> uint32_t {
    *status = s;
    if (s != kSOk) ++stats.errors;
    return static_cast<uint32_t>(std::min<uint64_t>(written + 1, chain.writable_len));
  };

  ReqHeader h;
  if (chain.readable_len < sizeof(h)) return finish(kSIoErr, 0);
  virtq_copy_from(chain.readable, 0, &h, sizeof(h));
  const uint64_t out_len = chain.readable_len - sizeof(h);  // device-readable data

  switch (h.type) {
    case kTIn: {
      ++stats.read_requests;
      if (!in_range(disk.size(), h.sector, in_len)) return finish(kSIoErr, 0);
      uint64_t offset = h.sector * kSectorSize, left = in_len;
      for (const VirtqSegment& s : chain.writable) {
        if (left == 0) break;
        const size_t n = std::min<uint64_t>(s.len, left);
        if (!disk.read(offset, s.ptr, n).ok()) return finish(kSIoErr, 0);
        offset += n;
        left -= n;
      }
      stats.bytes_read += in_len;
      return finish(kSOk, in_len);
    }
    case kTOut: {
      ++stats.write_requests;
      if (disk.read_only()) return finish(kSIoErr, 0);
      if (!in_range(disk.size(), h.sector, out_len)) return finish(kSIoErr, 0);
      uint64_t offset = h.sector * kSectorSize, skip = sizeof(h);
      for (const VirtqSegment& s : chain.readable) {
        if (skip >= s.len) {
          skip -= s.len;
          continue;
        }
        const size_t n = s.len - skip;
        if (!disk.write(offset, s.ptr + skip, n).ok()) return finish(kSIoErr, 0);
        offset += n;
        skip = 0;
      }
      stats.bytes_written += out_len;
      return finish(kSOk, 0);
    }
    case kTFlush:
      ++stats.flush_requests;
      return finish(disk.flush().ok() ? kSOk : kSIoErr, 0);
    case kTGetId: {
      uint8_t id[kIdBytes] = {};
      std::memcpy(id, serial.data(), std::min(serial.size(), kIdBytes));
      const size_t n = std::min<uint64_t>(in_len, kIdBytes);
      virtq_copy_to(chain.writable, 0, id, n);
      return finish(kSOk, n);
    }
    case kTDiscard:
    case kTWriteZeroes: {
      const bool discard = h.type == kTDiscard;
      ++(discard ? stats.discard_requests : stats.write_zeroes_requests);
      if (disk.read_only()) return finish(kSIoErr, 0);
      // max_discard_seg = max_write_zeroes_seg = 1.
      if (out_len != sizeof(DiscardSegment)) return finish(kSIoErr, 0);
      DiscardSegment seg;
      virtq_copy_from(chain.readable, sizeof(h), &seg, sizeof(seg));
      // 5.2.6.2: unmap is reserved for discard; other flag bits are reserved for both.
      if ((seg.flags & ~kDiscardFlagUnmap) || (discard && seg.flags)) return finish(kSUnsupp, 0);
      const uint32_t max = discard ? kMaxDiscardSectors : kMaxWriteZeroesSectors;
      if (seg.num_sectors > max) return finish(kSIoErr, 0);
      const uint64_t bytes = uint64_t{seg.num_sectors} * kSectorSize;
      if (!in_range(disk.size(), seg.sector, bytes)) return finish(kSIoErr, 0);
      const uint64_t offset = seg.sector * kSectorSize;
      if (discard) return finish(disk.discard(offset, bytes).ok() ? kSOk : kSIoErr, 0);
      static const std::vector<uint8_t> zeros(64 * 1024);
      for (uint64_t done = 0; done < bytes;) {
        const size_t n = std::min<uint64_t>(zeros.size(), bytes - done);
        if (!disk.write(offset + done, zeros.data(), n).ok()) return finish(kSIoErr, 0);
        done += n;
      }
      stats.bytes_written += bytes;
      return finish(kSOk, 0);
    }
    default:
      return finish(kSUnsupp, 0);
  }
}

}  // namespace nimbus::devices
