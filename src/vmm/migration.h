// Live migration of one VM between two VMMs (pre-copy), as QEMU, Xen and VMware do it: the
// disks' own data and all of RAM are sent while the guest runs, then what it wrote
// meanwhile, in rounds, until the rest fits the downtime budget (or the round limit);
// then the guest stops, the rest goes with the CPU and device state, and the target
// resumes it once the source has given it up. Wire format: migration_wire.h.
//
// The algorithms here talk to a VM only through SourceVm / TargetVm (Vmm implements them
// on its machine; the tests on plain memory), and to the other side through a Channel.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/block/tracked_disk.h"
#include "common/status.h"
#include "vmm/migration_wire.h"

namespace nimbus::vmm::migration {

struct SourceOptions {
  std::string destination;  // tcp:HOST:PORT or unix:PATH
  uint32_t max_downtime_ms = 100;
  uint32_t max_rounds = 30;
  bool compress = true;
  uint32_t max_bandwidth_mib_s = 0;  // 0: as fast as the connection goes
};

// What GET /migration shows.
struct Progress {
  std::string role = "none";   // source, target, none
  std::string state = "none";  // none, listening, active, completed, failed, cancelled
  std::string phase;           // connecting, disk, ram, stop-and-copy, done
  std::string listen;          // the target's bound address
  std::string error;
  uint32_t round = 0;
  uint64_t ram_pages_total = 0, ram_pages_sent = 0, zero_pages = 0, dirty_pages = 0;
  uint64_t ram_bytes_sent = 0, disk_bytes_sent = 0, bytes_on_wire = 0;
  double downtime_ms = 0, total_ms = 0;
};
nlohmann::json to_json(const Progress& p);

// Shared between the migration's thread and the API.
class ProgressBoard {
 public:
  Progress get() {
    std::lock_guard<std::mutex> lock(mu_);
    return p_;
  }
  void set(Progress p) {
    std::lock_guard<std::mutex> lock(mu_);
    p_ = std::move(p);
  }
  void update(const std::function<void(Progress&)>& f) {
    std::lock_guard<std::mutex> lock(mu_);
    f(p_);
  }

 private:
  std::mutex mu_;
  Progress p_;
};

class SourceVm {
 public:
  virtual ~SourceVm() = default;
  virtual uint8_t* ram() = 0;
  virtual uint64_t ram_size() = 0;
  virtual void start_dirty_log() = 0;
  virtual void stop_dirty_log() = 0;
  // Bit i of word w: page w * 64 + i was written since the last call (cleared).
  virtual void take_dirty_pages(std::vector<uint64_t>& bitmap) = 0;
  virtual std::vector<backends::TrackedDisk*> disks() = 0;
  virtual std::string config_json() = 0;
  // Stops the guest at an instruction boundary with its devices quiet (and its clock).
  virtual Status pause() = 0;
  virtual std::vector<uint8_t> save_state() = 0;
  virtual void resume() = 0;
  // What only one host may hold at a time (the forwards' listening ports), let go just
  // before the commit so that the target can take it; taken back if the commit fails.
  virtual void release_host_resources() = 0;
  virtual void reclaim_host_resources() = 0;
};

// The source side on the calling thread. OK: the target took the VM over (the caller
// stops its machine: it must not run again). An error: nothing changed for the guest
// (it runs on, its disks and RAM untouched). `cancel` is polled between records; a
// blocked read or write is cut short by Channel::shutdown from another thread.
Status run_source(SourceVm& vm, Channel& channel, const SourceOptions& options,
                  ProgressBoard& progress, const std::atomic<bool>& cancel);

class TargetVm {
 public:
  virtual ~TargetVm() = default;
  // Checks the source's configuration against this VM's (shape, drives, NICs and MACs)
  // and builds the machine to fill: a clear error if they do not match.
  virtual Status prepare(const nlohmann::json& source_config, uint64_t ram_size,
                         const std::vector<uint64_t>& disk_sizes) = 0;
  virtual uint8_t* ram() = 0;
  virtual std::vector<backends::BlockBackend*> disks() = 0;
  virtual Status load_state(const std::vector<uint8_t>& state) = 0;
  // The source gave the VM up: run it.
  virtual Status start() = 0;
  // Forget what prepare built (the migration failed).
  virtual void discard() = 0;
};

// The target side on the calling thread, on an accepted connection. OK: the VM runs here.
Status run_target(TargetVm& vm, Channel& channel, ProgressBoard& progress);

// Timeouts (ms): one record's I/O, and the target's answer after kEnd.
constexpr int kIoTimeoutMs = 60'000;
constexpr int kReadyTimeoutMs = 60'000;

}  // namespace nimbus::vmm::migration
