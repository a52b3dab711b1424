// virtio-blk (virtio 1.2 section 5.2), device id 2, one request queue over a
// BlockBackend. Requests: IN, OUT, FLUSH (BlockBackend::flush, i.e. fsync), GET_ID (the
// serial), DISCARD and WRITE_ZEROES (one segment each). A read-only backend offers
// VIRTIO_BLK_F_RO and fails writes, discards and write-zeroes with IOERR.
//
// Requests run on the device's own IoThread, never on the vCPU that wrote QueueNotify.
// A malformed ring sets DEVICE_NEEDS_RESET; a well-formed chain carrying a bad request
// (short header, out-of-range sector, unknown type) fails just that request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "backends/block/block_backend.h"
#include "devices/virtio/io_thread.h"
#include "devices/virtio/virtio_mmio.h"

namespace nimbus::devices {

class VirtioBlk : public VirtioDevice {
 public:
  // Names its snapshot sections ("virtio-blk-mmio", "virtio-blk"): never change it.
  static constexpr const char* kName = "virtio-blk";
  static constexpr uint32_t kDeviceId = 2;
  static constexpr uint16_t kQueueSize = 256;
  // Feature bits (5.2.3).
  static constexpr uint64_t kFSizeMax = 1ull << 1, kFSegMax = 1ull << 2, kFRo = 1ull << 5,
                            kFBlkSize = 1ull << 6, kFFlush = 1ull << 9, kFDiscard = 1ull << 13,
                            kFWriteZeroes = 1ull << 14;
  // Request types and status values (5.2.6).
  static constexpr uint32_t kTIn = 0, kTOut = 1, kTFlush = 4, kTGetId = 8, kTDiscard = 11,
                            kTWriteZeroes = 13;
  static constexpr uint8_t kSOk = 0, kSIoErr = 1, kSUnsupp = 2;
  static constexpr uint32_t kSectorSize = 512;
  static constexpr uint32_t kSizeMax = 1u << 20;            // bytes per segment
  static constexpr uint32_t kSegMax = kQueueSize - 2;       // header and status take two
  static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per request
  static constexpr uint32_t kMaxWriteZeroesSectors = 1u << 16;
  static constexpr size_t kIdBytes = 20;

  struct Stats {
    uint64_t requests = 0;
    uint64_t read_requests = 0, write_requests = 0, flush_requests = 0, discard_requests = 0,
             write_zeroes_requests = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
    uint64_t errors = 0;  // requests completed with IOERR or UNSUPP
  };

  // `serial` is what GET_ID returns (truncated to 20 bytes).
  explicit VirtioBlk(std::unique_ptr<backends::BlockBackend> disk, std::string serial = "nimbus");
  ~VirtioBlk() override;

  uint32_t device_id() const override { return kDeviceId; }
  std::string name() const override { return kName; }
  uint64_t device_features() const override;
  unsigned num_queues() const override { return 1; }
  uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
  void read_config(uint64_t offset, unsigned size, uint64_t& value) override;
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queue_notify(unsigned index) override;
  // pause() also flushes the disk (a failed flush counts in Stats::errors), so the
  // writes the guest saw complete are durable before a snapshot.
  void pause() override;
  void resume() override;
  // Section "virtio-blk": the disk's size and read-only flag (checked on load: the
  // snapshot must be restored over the same disk) and the counters.
  void save_state(StateWriter& w) const override;
  void load_state(StateReader& r) override;

  // Thread-safe.
  Stats stats();
  backends::BlockBackend& disk() { return *disk_; }

  // Executes one request chain against `disk` and writes its status byte. Returns the
  // used length (bytes written into the chain). Public so the fuzzer can drive it
  // without threads.
  static uint32_t execute(backends::BlockBackend& disk, const std::string& serial,
                          const VirtqChain& chain, Stats& stats);

 private:
  void process();

  std::unique_ptr<backends::BlockBackend> disk_;
  std::string serial_;
  mutable std::mutex mu_;
  VirtioTransport* transport_ = nullptr;  // non-null while active
  Stats stats_;
  bool paused_ = false;
  bool notified_while_paused_ = false;
  std::atomic<bool> kick_pending_{false};
  IoThread io_{kName};  // last: destroyed (joined) first
};

}  // namespace nimbus::devices
